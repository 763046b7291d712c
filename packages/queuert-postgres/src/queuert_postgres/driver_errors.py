"""Translation of asyncpg errors into queuert errors."""

from __future__ import annotations

import asyncio

import asyncpg
from asyncpg import exceptions as pg

from queuert.errors import AdapterError, QueuertError, SchemaNotMigratedError, TransientStateError

# Failures that may pass when the operation is tried again (in a new transaction).
_TRANSIENT: tuple[type[BaseException], ...] = (
    pg.PostgresConnectionError,  # class 08: connection exceptions
    pg.ConnectionDoesNotExistError,
    pg.SerializationError,  # 40001
    pg.DeadlockDetectedError,  # 40P01
    pg.LockNotAvailableError,  # 55P03 (lock_timeout)
    pg.QueryCanceledError,  # 57014 (statement_timeout)
    pg.AdminShutdownError,  # 57P01 (pg_terminate_backend, fast shutdown)
    pg.CrashShutdownError,  # 57P02
    pg.CannotConnectNowError,  # 57P03 (server starting up)
    pg.TooManyConnectionsError,  # 53300
    pg.InsufficientResourcesError,  # class 53
    OSError,  # refused, reset, unreachable
    asyncio.TimeoutError,  # connect or command timeout
    # The protocol state broke, typically because the server ended the session
    # between two statements; the pool replaces the connection.
    pg.InternalClientError,
)

# The schema (or a table or column of it) is missing: it needs a migration.
_NOT_MIGRATED: tuple[type[BaseException], ...] = (
    pg.UndefinedTableError,  # 42P01
    pg.InvalidSchemaNameError,  # 3F000
    pg.UndefinedColumnError,  # 42703
)

MIGRATE_HINT = (
    "run `await app.migrate()` (or `await PostgresStateAdapter.migrate()`) to create or "
    "upgrade them"
)

DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    pg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
    # A stored value Python cannot hold (a time past year 9999, written before
    # queuert bounded leases and delays); it is an AdapterError.
    OverflowError,
)
"""Every exception type :func:`translate` knows how to turn into a queuert error."""


def connection_gone(conn: object) -> bool:
    """Whether ``conn`` (a connection, or a pool's proxy of one) is closed, or was taken
    back by its pool (asyncpg detaches a pooled connection from its holder when it
    dies)."""
    try:
        return bool(conn.is_closed())  # type: ignore[attr-defined]
    except asyncpg.InterfaceError:
        return True


def translate(exc: BaseException, *, schema: str, conn: object = None) -> QueuertError:
    """The queuert error standing for the driver error ``exc``, raised by a statement
    on ``conn`` when given."""
    if isinstance(exc, QueuertError):
        return exc
    if isinstance(exc, _NOT_MIGRATED):
        return SchemaNotMigratedError(
            f'the queuert tables in PostgreSQL schema "{schema}" are missing or out of date '
            f"({exc}): {MIGRATE_HINT}"
        )
    if isinstance(exc, _TRANSIENT):
        return TransientStateError(f"PostgreSQL operation failed and may be retried: {exc!r}")
    if isinstance(exc, asyncpg.InterfaceError) and conn is not None and connection_gone(conn):
        # The connection went away under us between two statements.
        return TransientStateError(f"PostgreSQL connection unavailable: {exc}")
    return AdapterError(f"PostgreSQL operation failed: {exc!r}")
