"""Translation of sqlite3 errors into queuert errors."""

from __future__ import annotations

import sqlite3

from queuert.errors import AdapterError, QueuertError, SchemaNotMigratedError, TransientStateError

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6


def migrate_hint(path: str) -> str:
    return f"run `await SqliteStateAdapter(path={path!r}).migrate()` before using it"


def schema_missing(path: str, detail: str) -> SchemaNotMigratedError:
    return SchemaNotMigratedError(
        f"queuert schema is not migrated in SQLite database {path!r} ({detail}); "
        + migrate_hint(path)
    )


def translate(error: sqlite3.Error, path: str) -> QueuertError:
    """The queuert error that stands for ``error`` raised on the database at ``path``."""
    code = getattr(error, "sqlite_errorcode", None)
    primary = None if code is None else code & 0xFF
    message = str(error)
    if primary in (_SQLITE_BUSY, _SQLITE_LOCKED) or "database is locked" in message:
        return TransientStateError(f"SQLite database {path!r} is busy: {message}")
    if message.startswith(("no such table", "no such column")):
        return schema_missing(path, message)
    return AdapterError(f"SQLite error on {path!r}: {message}")
