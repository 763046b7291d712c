"""Deduplication keys of the in-memory state adapter.

Transactions of the in-memory store run one at a time, so taking a key is a
read and a write inside one transaction that nothing can interleave with; every
change goes through the transaction's undo log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from queuert.adapters.memory_blockers import _assign
from queuert.records import DedupKey, DedupScope, NewJob

if TYPE_CHECKING:
    from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction


class MemoryDedup:
    """The keys of one in-memory store."""

    def __init__(self) -> None:
        self.holders: dict[tuple[str, str], tuple[str, datetime]] = {}
        """(chain name, key) -> the chain that last took the key, and when."""
        self.keys: dict[str, str] = {}
        """chain id -> the key it was started with."""

    def _holds(
        self,
        store: MemoryStateAdapter,
        holder: tuple[str, datetime],
        dedup: DedupKey,
        now: datetime,
    ) -> bool:
        chain_id, taken_at = holder
        chain = store._chains.get(chain_id)
        if chain is None:
            return False
        if dedup.scope is DedupScope.INCOMPLETE:
            return not chain.last().status.is_terminal
        return dedup.window_ms is None or taken_at > now - timedelta(milliseconds=dedup.window_ms)

    def create(
        self,
        store: MemoryStateAdapter,
        tx: MemoryTransaction,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
    ) -> list[str]:
        now = store.now()
        holders: list[str] = []
        for job, request in zip(jobs, dedup, strict=True):
            slot = (job.chain_name, request.key)
            holder = self.holders.get(slot)
            if holder is not None and self._holds(store, holder, request, now):
                holders.append(holder[0])
                continue
            _assign(tx, self.holders, slot, (job.chain_id, now))
            _assign(tx, self.keys, job.chain_id, request.key)
            holders.append(job.chain_id)
            # Inserted at once: a later job of the batch with this key finds its chain.
            store._create_jobs(tx, [job])
        return holders
