"""SQLAlchemy's asyncio objects as the caller's transaction.

An application on SQLAlchemy 2 passes its ``AsyncSession`` or ``AsyncConnection``
as ``tx``; each state adapter turns it into its driver's connection (see
:meth:`queuert.StateAdapter.caller_transaction`) with the helpers here, through
SQLAlchemy's public API only. SQLAlchemy is an optional dependency
(``queuert-core[sqlalchemy]``): nothing here imports it unless the application
already did, so a caller's object can only be an SQLAlchemy one when the module
is loaded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from queuert.errors import ForeignTransactionError

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

log = logging.getLogger("queuert")

_ASYNCIO = "sqlalchemy.ext.asyncio"
_PENDING = "queuert.after_commit"
_LISTENING = "queuert.listening"
# Sends started from an after-commit event, kept until done so none is collected early.
_sending: set[asyncio.Task[None]] = set()


def is_session(tx: object) -> bool:
    """Whether ``tx`` is an SQLAlchemy ``AsyncSession``."""
    module = sys.modules.get(_ASYNCIO)
    return module is not None and isinstance(tx, module.AsyncSession)


def is_sqlalchemy(tx: object) -> bool:
    """Whether ``tx`` is an SQLAlchemy ``AsyncSession`` or ``AsyncConnection``."""
    module = sys.modules.get(_ASYNCIO)
    return module is not None and isinstance(tx, module.AsyncSession | module.AsyncConnection)


async def async_connection(tx: AsyncSession | AsyncConnection) -> AsyncConnection:
    """The ``AsyncConnection`` of ``tx``: the session's connection for its current
    transaction (begun now when none is), or ``tx`` itself."""
    if is_session(tx):
        session: AsyncSession = tx  # type: ignore[assignment]
        return await session.connection()
    return tx  # type: ignore[return-value]


async def driver_connection(conn: AsyncConnection) -> Any:
    """The driver's own connection object behind ``conn`` (an asyncpg or aiosqlite
    connection, ...), as SQLAlchemy documents for asyncio drivers."""
    raw = await conn.get_raw_connection()
    return raw.driver_connection


def dialect_name(conn: AsyncConnection) -> str:
    """``dialect+driver`` of ``conn``, for error messages."""
    dialect = conn.dialect
    return f"{dialect.name}+{dialect.driver}"


def refuse(tx: object, adapter: str, why: str) -> ForeignTransactionError:
    """The error that refuses ``tx``: it cannot be ``adapter``'s transaction."""
    return ForeignTransactionError(f"{adapter} cannot use {type(tx).__name__} as tx: {why}")


def on_commit(session: AsyncSession, send: Callable[[], Awaitable[None]]) -> None:
    """Call ``send`` after ``session``'s current transaction commits; forget it when
    that transaction ends any other way (rollback, close).

    Uses the session's ``after_commit`` and ``after_transaction_end`` events; the
    send runs as a task of the running loop so the commit does not wait for it."""
    from sqlalchemy import event

    sync = session.sync_session
    pending: list[Callable[[], Awaitable[None]]] = sync.info.setdefault(_PENDING, [])
    pending.append(send)
    if sync.info.get(_LISTENING):
        return
    sync.info[_LISTENING] = True
    event.listen(sync, "after_commit", _after_commit)
    event.listen(sync, "after_transaction_end", _after_transaction_end)


def _after_commit(sync: Any) -> None:
    pending = sync.info.pop(_PENDING, None)
    if not pending:
        return
    loop = asyncio.get_running_loop()
    for send in pending:
        task = loop.create_task(_send(send))
        _sending.add(task)
        task.add_done_callback(_sending.discard)


def _after_transaction_end(sync: Any, transaction: Any) -> None:
    # Fires after after_commit; only the outermost transaction's end counts
    # (a savepoint ending leaves the outer transaction's sends pending).
    if transaction.parent is None:
        sync.info.pop(_PENDING, None)


async def _send(send: Callable[[], Awaitable[None]]) -> None:
    try:
        await send()
    except Exception:
        # Notifications only wake workers sooner; workers poll without them.
        log.warning("sending notifications after a session's commit failed", exc_info=True)
