"""The adapter's statements over a caller's psycopg 3 ``AsyncConnection``.

The PostgreSQL adapter's statements are written for asyncpg (``$1`` parameters)
and run through ``fetch`` / ``fetchrow``. :class:`PsycopgExecutor` offers those two
methods over a psycopg connection, sending the same statements unchanged through
psycopg's raw cursor (which takes ``$1`` parameters) and translating psycopg's
errors into queuert errors, so one set of statements serves both drivers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pe

from queuert.errors import AdapterError, QueuertError, SchemaNotMigratedError, TransientStateError
from queuert_postgres.driver_errors import MIGRATE_HINT

_TIMEOUT = 30.0
"""Seconds one statement on the caller's connection may take."""

_TRANSIENT: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,  # connection lost, server shutting down, ...
    pe.SerializationFailure,
    pe.DeadlockDetected,
    pe.LockNotAvailable,
    pe.QueryCanceled,
    TimeoutError,
    OSError,
)
_NOT_MIGRATED: tuple[type[BaseException], ...] = (
    pe.UndefinedTable,
    pe.InvalidSchemaName,
    pe.UndefinedColumn,
)


def is_psycopg(tx: object) -> bool:
    """Whether ``tx`` is a psycopg ``AsyncConnection``."""
    return isinstance(tx, psycopg.AsyncConnection)


class PsycopgExecutor:
    """``fetch`` and ``fetchrow`` as asyncpg's connection has them, over the caller's
    psycopg ``AsyncConnection`` and in its current transaction (psycopg begins one
    at the first statement unless the connection is in autocommit mode). Rows are
    tuples, read by position."""

    __slots__ = ("_conn", "_schema")

    def __init__(self, conn: psycopg.AsyncConnection[Any], *, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    async def fetch(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        return await self._run(sql, args, one=False)  # type: ignore[return-value]

    async def fetchrow(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        return await self._run(sql, args, one=True)  # type: ignore[return-value]

    def is_open(self) -> bool:
        """Whether statements run in a transaction of an open connection: psycopg
        begins one at the first statement unless the connection is in autocommit
        mode, where every statement would commit on its own."""
        return not self._conn.closed and not self._conn.autocommit

    def transaction(self) -> PsycopgSavepoint:
        """A savepoint inside the caller's transaction, with the ``start`` /
        ``commit`` / ``rollback`` of asyncpg's transaction object, for the adapter's
        multi-statement operations."""
        return PsycopgSavepoint(self)

    async def _run(
        self, sql: str, args: Sequence[Any], *, one: bool
    ) -> list[tuple[Any, ...]] | tuple[Any, ...] | None:
        try:
            async with asyncio.timeout(_TIMEOUT):
                cursor = psycopg.AsyncRawCursor(self._conn)
                async with cursor:
                    await cursor.execute(sql, list(args) or None, prepare=False)
                    if cursor.description is None:
                        return None if one else []
                    if one:
                        return await cursor.fetchone()
                    return await cursor.fetchall()
        except QueuertError:
            raise
        except (psycopg.Error, TimeoutError, OSError) as exc:
            raise translate(exc, schema=self._schema) from exc


class PsycopgSavepoint:
    """A savepoint of the caller's transaction. Plain SAVEPOINT statements rather
    than psycopg's ``transaction()`` block: on an idle connection that block would
    begin, and then commit, a transaction of its own, committing the caller's
    writes early. On an autocommit connection the SAVEPOINT fails, as it must."""

    __slots__ = ("_executor",)

    def __init__(self, executor: PsycopgExecutor) -> None:
        self._executor = executor

    async def start(self) -> None:
        await self._executor.fetch("SAVEPOINT queuert_operation")

    async def commit(self) -> None:
        await self._executor.fetch("RELEASE SAVEPOINT queuert_operation")

    async def rollback(self) -> None:
        await self._executor.fetch("ROLLBACK TO SAVEPOINT queuert_operation")
        await self._executor.fetch("RELEASE SAVEPOINT queuert_operation")


def translate(exc: BaseException, *, schema: str) -> QueuertError:
    """The queuert error standing for the psycopg error ``exc``."""
    if isinstance(exc, _NOT_MIGRATED):
        return SchemaNotMigratedError(
            f'the queuert tables in PostgreSQL schema "{schema}" are missing or out of date '
            f"({exc}): {MIGRATE_HINT}"
        )
    if isinstance(exc, _TRANSIENT):
        return TransientStateError(f"PostgreSQL operation failed and may be retried: {exc!r}")
    return AdapterError(f"PostgreSQL operation failed: {exc!r}")
