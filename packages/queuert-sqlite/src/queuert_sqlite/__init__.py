"""queuert: SQLite state adapter (aiosqlite)."""
