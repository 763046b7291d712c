"""Reads and listings of the in-memory state adapter: jobs and chains by id, and
pages of them in id order (other orders are in :mod:`memory_control`).
"""

from __future__ import annotations

from collections.abc import Iterable

from queuert.adapter_support import keyset_page
from queuert.adapters import memory_control
from queuert.adapters.memory_rows import _chain_record, _keys_after
from queuert.adapters.memory_store import MemoryStore, MemoryTransaction
from queuert.records import ChainFilter, ChainRecord, JobFilter, JobRecord, Page

__all__ = ["MemoryReads"]


class MemoryReads(MemoryStore):
    """The reads of :class:`~queuert.adapters.memory_state.MemoryStateAdapter`."""

    # -- reading ---------------------------------------------------------------

    async def get_job(self, *, tx: MemoryTransaction | None, job_id: str) -> JobRecord | None:
        return await self._run(tx, self._get_job, job_id)

    async def list_jobs(
        self,
        *,
        tx: MemoryTransaction | None,
        filter: JobFilter,
        after: str | None,
        limit: int,
    ) -> Page[JobRecord]:
        return await self._run(tx, self._list_jobs, filter, after, limit)

    async def get_chain(self, *, tx: MemoryTransaction | None, chain_id: str) -> ChainRecord | None:
        return await self._run(tx, self._get_chain, chain_id)

    async def list_chains(
        self,
        *,
        tx: MemoryTransaction | None,
        filter: ChainFilter,
        after: str | None,
        limit: int,
    ) -> Page[ChainRecord]:
        return await self._run(tx, self._list_chains, filter, after, limit)

    # -- statements -----------------------------------------------------------

    def _get_job(self, tx: MemoryTransaction, job_id: str) -> JobRecord | None:
        row = self._jobs.get(job_id)
        return None if row is None else row.record()

    def _list_jobs(
        self, tx: MemoryTransaction, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if filter.newest_first or filter.created_after or filter.created_before:
            return memory_control.list_jobs(self, filter, after, limit)
        ids: Iterable[str]
        if filter.chain_id is not None:
            chain = self._chains.get(filter.chain_id)
            chain_ids = sorted(row.id for row in chain.rows.values()) if chain else []
            ids = _keys_after(chain_ids, after)
        else:
            ids = _keys_after(self._job_ids, after)
        statuses = None if filter.statuses is None else frozenset(filter.statuses)
        queues = None if filter.queues is None else frozenset(filter.queues)
        items: list[JobRecord] = []
        if limit > 0:
            for job_id in ids:
                row = self._jobs[job_id]
                if statuses is not None and row.status not in statuses:
                    continue
                if queues is not None and row.queue not in queues:
                    continue
                items.append(row.record())
                if len(items) == limit:
                    break
        return keyset_page(items, limit)

    def _get_chain(self, tx: MemoryTransaction, chain_id: str) -> ChainRecord | None:
        chain = self._chains.get(chain_id)
        return (
            None
            if chain is None
            else _chain_record(chain_id, chain, self._dedup.keys.get(chain_id))
        )

    def _list_chains(
        self, tx: MemoryTransaction, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if filter.newest_first or filter.created_after or filter.created_before:
            return memory_control.list_chains(self, filter, after, limit)
        statuses = None if filter.statuses is None else frozenset(filter.statuses)
        names = None if filter.chain_names is None else frozenset(filter.chain_names)
        items: list[ChainRecord] = []
        if limit > 0:
            for chain_id in _keys_after(self._chain_ids, after):
                chain = self._chains[chain_id]
                if names is not None and chain.first().chain_name not in names:
                    continue
                if statuses is not None and chain.last().status not in statuses:
                    continue
                if filter.queues is not None and chain.last().queue not in filter.queues:
                    continue
                key = self._dedup.keys.get(chain_id)
                if filter.dedup_key is not None and key != filter.dedup_key:
                    continue
                items.append(_chain_record(chain_id, chain, key))
                if len(items) == limit:
                    break
        return keyset_page(items, limit)
