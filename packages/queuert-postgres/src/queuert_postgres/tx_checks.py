"""Checks of the caller's transaction object, through asyncpg's public API only."""

from __future__ import annotations

import sys

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from queuert.errors import InvalidTransactionError, TransactionClosedError
from queuert.ports.state import describe_transaction
from queuert_postgres.connections import PostgresTx


def is_open(tx: object) -> bool:
    """Whether ``tx`` is an asyncpg connection (or pool proxy) that is open and inside
    a transaction, or a psycopg executor over an open connection that is not in
    autocommit mode. A proxy released back to its pool answers ``False``."""
    if _is_psycopg_executor(tx):
        return tx.is_open()  # type: ignore[attr-defined, no-any-return]
    if not isinstance(tx, asyncpg.Connection | PoolConnectionProxy):
        return False
    try:
        return not tx.is_closed() and tx.is_in_transaction()
    except asyncpg.InterfaceError:  # a proxy whose connection went back to the pool
        return False


def checked(tx: object) -> PostgresTx:
    """``tx`` when it is an asyncpg connection inside an open transaction; otherwise
    :class:`~queuert.errors.InvalidTransactionError` (another type) or
    :class:`~queuert.errors.TransactionClosedError`."""
    if not isinstance(tx, asyncpg.Connection | PoolConnectionProxy) and not _is_psycopg_executor(
        tx
    ):
        raise InvalidTransactionError(
            f"{describe_transaction(tx)} is not an asyncpg connection inside a transaction"
        )
    if not is_open(tx):
        raise TransactionClosedError(
            f"{describe_transaction(tx)} is closed, released to its pool, or not inside a "
            "transaction (it was committed or rolled back, or never begun)"
        )
    return tx  # type: ignore[return-value]  # a psycopg executor runs the same calls


def _is_psycopg_executor(tx: object) -> bool:
    # An executor exists only once its module was imported (by the psycopg extra's
    # unwrapping); looking it up here keeps psycopg an optional dependency.
    module = sys.modules.get("queuert_postgres.psycopg_executor")
    return module is not None and isinstance(tx, module.PsycopgExecutor)
