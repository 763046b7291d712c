"""Translation of sqlite3 errors into queuert errors."""

from __future__ import annotations

import sqlite3

from queuert.errors import AdapterError, QueuertError, SchemaNotMigratedError, TransientStateError
from queuert_sqlite.connections import is_busy


def schema_missing(path: str, detail: str, adapter_args: str) -> SchemaNotMigratedError:
    """The error for a database whose queuert schema is missing or old; ``adapter_args``
    are the constructor arguments to show in the command that fixes it."""
    return SchemaNotMigratedError(
        f"queuert schema is not migrated in SQLite database {path!r} ({detail}); "
        f"run `await SqliteStateAdapter({adapter_args}).migrate()` first"
    )


def translate(error: sqlite3.Error, path: str, adapter_args: str) -> QueuertError:
    """The queuert error that stands for ``error`` raised on the database at ``path``:
    busy or locked -> :class:`TransientStateError`, missing tables or columns ->
    :class:`SchemaNotMigratedError`, anything else -> :class:`AdapterError`."""
    message = str(error)
    if is_busy(error):
        return TransientStateError(f"SQLite database {path!r} is busy: {message}")
    if message.startswith(("no such table", "no such column")):
        return schema_missing(path, message, adapter_args)
    return AdapterError(f"SQLite error on {path!r}: {message}")
