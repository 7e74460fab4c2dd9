"""For a LiteLLM proxy `config.yaml`:

    litellm_settings:
      callbacks: ["llmtop.collector.proxy.collector"]

Each proxy worker process imports this module and gets its own instance (and writer); the database
path comes from `LLMTOP_DB` when the first row is written.
"""

from llmtop.collector.callback import Collector

collector = Collector()
