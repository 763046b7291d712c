"""Starting, reading, cancelling and retrying chains from Django's synchronous code,
in the transaction of Django's connection to ``QUEUERT["DATABASE"]``.

Each call runs inside ``transaction.atomic()`` on that database: within the
application's own atomic block its writes commit or roll back with the
application's rows; outside one it commits on its own. The signals that wake idle
workers are sent through ``transaction.on_commit``, so they leave only once the
chain exists, and never for a block that rolled back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.db import transaction

from queuert.client import ChainHandle
from queuert.definitions import ChainDef
from queuert.errors import UnknownChainError
from queuert.records import ChainRecord, DedupScope
from queuert.validation import show
from queuert_django import database
from queuert_django.sync_client import client

InT = TypeVar("InT")
OutT = TypeVar("OutT")


def enqueue_job_chain(
    chain: ChainDef[InT, OutT],
    input: InT,
    *,
    delay: timedelta | None = None,
    start_at: datetime | None = None,
    priority: int | None = None,
    blockers: Sequence[ChainHandle[Any]] | None = None,
    dedup_key: str | None = None,
    dedup_scope: DedupScope | str = "incomplete",
    dedup_window: timedelta | None = None,
) -> ChainHandle[OutT]:
    """Start ``chain`` with ``input`` in the current transaction of the queuert
    database: inside ``transaction.atomic()`` the chain exists exactly when the
    outermost block commits. Takes the options of :meth:`queuert.Queuert.enqueue_job_chain`.

    Raises :class:`~queuert.ValidationError` subclasses (an unknown chain: not in
    ``QUEUERT["CHAINS"]``; an input of the wrong type; a bad schedule) before
    anything is written, and :class:`~queuert.ConfigurationError` for a bad setting."""
    return enqueue_job_chains(
        chain,
        [input],
        delay=delay,
        start_at=start_at,
        priority=priority,
        blockers=blockers,
        dedup_keys=None if dedup_key is None else [dedup_key],
        dedup_scope=dedup_scope,
        dedup_window=dedup_window,
    )[0]


def enqueue_job_chains(
    chain: ChainDef[InT, OutT],
    inputs: Sequence[InT],
    *,
    delay: timedelta | None = None,
    start_at: datetime | None = None,
    priority: int | None = None,
    blockers: Sequence[ChainHandle[Any]] | None = None,
    dedup_keys: Sequence[str] | None = None,
    dedup_scope: DedupScope | str = "incomplete",
    dedup_window: timedelta | None = None,
) -> list[ChainHandle[OutT]]:
    """Start one chain per input in one batch write; the contract of
    :func:`enqueue_job_chain`. Every input is validated before anything is written."""
    sync, alias = client()
    if not isinstance(chain, ChainDef) or sync.app.chains.get(chain.name) is not chain:
        raise UnknownChainError(
            f"chain {show(getattr(chain, 'name', chain))} is not in the chains of "
            "QUEUERT['CHAINS'] (nor a django.tasks queue)"
        )
    with transaction.atomic(using=alias):
        conn = database.driver_connection(database.wrapper(alias))
        return sync.enqueue_job_chains(
            conn,
            chain,
            inputs,
            delay=delay,
            start_at=start_at,
            priority=priority,
            blockers=blockers,
            dedup_keys=dedup_keys,
            dedup_scope=dedup_scope,
            dedup_window=dedup_window,
        )


def get_chain(chain_id: str) -> ChainRecord | None:
    """The chain with this id, or ``None``; it reads what the current transaction
    sees (a chain started in an atomic block not yet committed included)."""
    sync, alias = client()
    with transaction.atomic(using=alias):
        return sync.get_chain(database.driver_connection(database.wrapper(alias)), chain_id)


def cancel_chain(chain_id: str) -> ChainRecord:
    """Cancel the chain: its current job will not run (a running job's lease is
    revoked and its finalize commits nothing). Raises
    :class:`~queuert.JobNotFoundError` for an unknown id and
    :class:`~queuert.JobStateError` for a chain that already ended."""
    sync, alias = client()
    with transaction.atomic(using=alias):
        return sync.cancel_chain(database.driver_connection(database.wrapper(alias)), chain_id)


def retry_chain(chain_id: str) -> ChainRecord:
    """Resume a ``failed`` or ``cancelled`` chain at the job it ended on, with a fresh
    attempt budget. Raises :class:`~queuert.JobNotFoundError` or
    :class:`~queuert.JobStateError`."""
    sync, alias = client()
    with transaction.atomic(using=alias):
        return sync.retry_chain(database.driver_connection(database.wrapper(alias)), chain_id)
