"""llmtop.tui: the live Textual dashboard. Reads only through llmtop.store.reader."""
