"""The SQLite layer every other part shares: where the file lives, its schema, and the read queries.

The collector writes through `llmtop.store.schema`; the TUI and `llmtop check` read through
`llmtop.store.reader` (the filter language in `filters`, results in `views`), which return plain
dataclasses so nothing above this layer touches SQL.
"""

from llmtop.store.db import DatabaseError, connect, default_db_path, resolve_db_path

__all__ = ["DatabaseError", "connect", "default_db_path", "resolve_db_path"]
