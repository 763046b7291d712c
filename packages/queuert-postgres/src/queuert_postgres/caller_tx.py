"""The caller's transaction object, turned into what the PostgreSQL adapter runs its
statements on: an asyncpg connection as it is; a psycopg 3 ``AsyncConnection`` (the
``psycopg`` extra) through :class:`~queuert_postgres.psycopg_executor.PsycopgExecutor`;
or the driver connection behind an SQLAlchemy ``AsyncSession`` / ``AsyncConnection``
(``postgresql+asyncpg`` or ``postgresql+psycopg``) of the adapter's database, inside
the session's transaction. Objects of another database are refused."""

from __future__ import annotations

import asyncio
import sys
import weakref
from typing import TYPE_CHECKING, Any

import asyncpg

from queuert import sqlalchemy_tx
from queuert.errors import (
    AdapterError,
    InvalidTransactionError,
    QueuertError,
    TransientStateError,
)
from queuert.ports.state import describe_transaction
from queuert_postgres.connections import PostgresTx
from queuert_postgres.driver_errors import DRIVER_ERRORS, translate

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

    from queuert_postgres.state import PostgresStateAdapter

_TIMEOUT = 30.0
"""Seconds the identity check of a session's database may take."""

# What tells two databases apart: the database's name on a server started at one
# moment. Read once per adapter and once per driver connection.
_IDENTITY = "SELECT current_database()::text, pg_postmaster_start_time()"
_adapters: weakref.WeakKeyDictionary[PostgresStateAdapter, tuple[Any, ...]] = (
    weakref.WeakKeyDictionary()
)
_connections: weakref.WeakKeyDictionary[Any, tuple[Any, ...]] = weakref.WeakKeyDictionary()


async def caller_connection(adapter: PostgresStateAdapter, tx: object) -> PostgresTx:
    """``tx`` when it is an asyncpg connection (or anything else this module does not
    know); a psycopg ``AsyncConnection`` as an executor over it; for an SQLAlchemy
    object, its driver connection in the SQLAlchemy transaction (begun now when
    none is). Raises :class:`~queuert.errors.ForeignTransactionError` for another
    dialect or another database than the adapter's."""
    psycopg_tx = _is_psycopg(tx)
    if not psycopg_tx and not sqlalchemy_tx.is_sqlalchemy(tx):
        return tx  # type: ignore[return-value]
    name = type(adapter).__name__
    try:
        async with asyncio.timeout(_TIMEOUT):
            driver: Any
            if psycopg_tx:
                driver = _psycopg_executor(adapter, tx)
                theirs = await _psycopg_identity(tx, driver)
            else:
                conn = await sqlalchemy_tx.async_connection(tx)  # type: ignore[arg-type]
                raw = await sqlalchemy_tx.driver_connection(conn)
                if _is_psycopg(raw):
                    driver = _psycopg_executor(adapter, raw)
                    theirs = await _psycopg_identity(raw, driver)
                elif isinstance(raw, asyncpg.Connection):
                    driver = raw
                    theirs = await _connection_identity(conn, raw)
                else:
                    raise sqlalchemy_tx.refuse(
                        tx,
                        name,
                        f"its dialect is {sqlalchemy_tx.dialect_name(conn)}, "
                        "not postgresql+asyncpg or postgresql+psycopg",
                    )
            ours = await _adapter_identity(adapter)
    except QueuertError:
        raise
    except TimeoutError as exc:
        raise TransientStateError(
            f"checking the database of {type(tx).__name__} timed out"
        ) from exc
    except DRIVER_ERRORS as exc:
        raise translate(exc, schema=adapter.schema) from exc
    except Exception as exc:
        raise _sqlalchemy_error(exc) from exc
    if theirs != ours:
        raise sqlalchemy_tx.refuse(
            tx,
            name,
            f"it is bound to database {theirs[0]!r}, another database than the "
            f"adapter's ({ours[0]!r})",
        )
    return driver  # type: ignore[no-any-return]


def sync_connection(adapter: PostgresStateAdapter, conn: object) -> PostgresTx:
    """A caller's synchronous psycopg ``Connection`` as the executor the adapter's
    operations run on without an event loop; psycopg is optional, so without it no
    object is one (:class:`~queuert.errors.InvalidTransactionError`)."""
    try:
        from queuert_postgres.psycopg_sync import sync_transaction
    except ImportError:
        raise InvalidTransactionError(
            f"{describe_transaction(conn)} is not a psycopg Connection (queuert.sync on "
            "PostgreSQL takes one: install queuert-postgres[psycopg])"
        ) from None
    return sync_transaction(adapter, conn)


def _is_psycopg(tx: object) -> bool:
    # psycopg is optional: an object can only be one of its connections once the
    # application imported it.
    if "psycopg" not in sys.modules:
        return False
    from queuert_postgres.psycopg_executor import is_psycopg

    return is_psycopg(tx)


def _psycopg_executor(adapter: PostgresStateAdapter, conn: Any) -> Any:
    from queuert_postgres.psycopg_executor import PsycopgExecutor

    return PsycopgExecutor(conn, schema=adapter.schema)


async def _psycopg_identity(conn: Any, executor: Any) -> tuple[Any, ...]:
    known = _connections.get(conn)
    if known is None:
        row = await executor.fetchrow(_IDENTITY)
        known = _connections[conn] = tuple(row)
    return known


async def _connection_identity(conn: AsyncConnection, driver: Any) -> tuple[Any, ...]:
    known = _connections.get(driver)
    if known is not None and driver.is_in_transaction():
        return known
    # Through SQLAlchemy, so that its transaction begins (SQLAlchemy's asyncpg
    # dialect begins one at the first statement, not at session.connection()).
    row = (await conn.exec_driver_sql(_IDENTITY)).one()
    identity = tuple(row)
    _connections[driver] = identity
    return identity


async def _adapter_identity(adapter: PostgresStateAdapter) -> tuple[Any, ...]:
    known = _adapters.get(adapter)
    if known is None:
        row = await adapter.pool.fetchrow(_IDENTITY, timeout=_TIMEOUT)
        assert row is not None
        known = _adapters[adapter] = tuple(row)
    return known


def _sqlalchemy_error(exc: Exception) -> QueuertError:
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return TransientStateError(f"the session's connection was lost: {exc}"[:500])
    return AdapterError(f"the session's connection failed: {type(exc).__name__}: {exc}"[:500])
