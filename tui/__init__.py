"""llmtop."""
