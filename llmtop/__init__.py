"""llmtop: top for LLM spend.

The repository keeps one folder per layer; installed, they are sub-packages of this one:
`llmtop.collector` (LiteLLM callback), `llmtop.pricing` (price catalogue and cost engine),
`llmtop.store` (SQLite schema, migrations, read queries), `llmtop.tui` (the dashboard),
`llmtop.alerts` (rules, anomaly detection, likely cause) and `llmtop.demo` (simulated workload).
"""

__version__ = "0.1.0"
