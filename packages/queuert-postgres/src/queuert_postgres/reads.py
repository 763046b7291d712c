"""Reading operations of the PostgreSQL state adapter: get, list and delete jobs
and chains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queuert.adapter_support import keyset_page
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobFilter,
    JobRecord,
    JobStatus,
    Page,
)
from queuert_postgres.adapter_base import PostgresAdapterBase
from queuert_postgres.connections import PostgresTx
from queuert_postgres.rows import chain_record, job_record


class Reads(PostgresAdapterBase):
    """Reading jobs and chains (part of :class:`~queuert_postgres.PostgresStateAdapter`)."""

    # -- reading -------------------------------------------------------------------

    async def get_job(self, *, tx: PostgresTx | None, job_id: str) -> JobRecord | None:
        row = await self._fetchrow(tx, self._sql.get_job, job_id)
        return None if row is None else job_record(row)

    async def list_jobs(
        self, *, tx: PostgresTx | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if limit <= 0:
            return Page()
        args: list[Any] = []
        if after is not None:
            args.append(after)
        if filter.statuses is not None:
            args.append([JobStatus(s).value for s in filter.statuses])
        if filter.chain_id is not None:
            args.append(filter.chain_id)
        if filter.queues is not None:
            args.append(list(filter.queues))
        args += [t for t in (filter.created_after, filter.created_before) if t is not None]
        sql = self._sql.list_jobs(
            after=after is not None,
            statuses=filter.statuses is not None,
            chain_id=filter.chain_id is not None,
            queues=filter.queues is not None,
            created_after=filter.created_after is not None,
            created_before=filter.created_before is not None,
            newest=filter.newest_first,
        )
        rows = await self._fetch(tx, sql, *args, limit)
        items = [job_record(row) for row in rows]
        return keyset_page(items, limit)

    async def get_chain(self, *, tx: PostgresTx | None, chain_id: str) -> ChainRecord | None:
        row = await self._fetchrow(tx, self._sql.get_chain, chain_id)
        return None if row is None else chain_record(row)

    async def list_chains(
        self, *, tx: PostgresTx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if limit <= 0:
            return Page()
        if filter.dedup_key is not None:
            return await self._list_chains_by_key(tx, filter, after, limit)
        args: list[Any] = []
        if after is not None:
            args.append(after)
        if filter.statuses is not None:
            args.append([JobStatus(s).value for s in filter.statuses])
        if filter.chain_names is not None:
            args.append(list(filter.chain_names))
        args += [t for t in (filter.created_after, filter.created_before) if t is not None]
        if filter.queues is not None:
            args.append(list(filter.queues))
        sql = self._sql.list_chains(
            after=after is not None,
            statuses=filter.statuses is not None,
            chain_names=filter.chain_names is not None,
            created_after=filter.created_after is not None,
            created_before=filter.created_before is not None,
            newest=filter.newest_first,
            queues=filter.queues is not None,
        )
        rows = await self._fetch(tx, sql, *args, limit)
        items = [chain_record(row) for row in rows]
        return keyset_page(items, limit)

    async def delete_chains(self, *, tx: PostgresTx | None, chain_ids: Sequence[str]) -> int:
        if not chain_ids:
            return 0
        row = await self._fetchrow(tx, self._sql.delete_chains, list(chain_ids))
        return 0 if row is None else int(row[0])

    async def _list_chains_by_key(
        self, tx: PostgresTx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        rows = await self._fetch(
            tx,
            self._dedup_sql.list_chains[filter.newest_first],
            filter.dedup_key,
            after,
            None if filter.statuses is None else [JobStatus(s).value for s in filter.statuses],
            None if filter.chain_names is None else list(filter.chain_names),
            filter.created_after,
            filter.created_before,
            limit,
            None if filter.queues is None else list(filter.queues),
        )
        return keyset_page([chain_record(row) for row in rows], limit)
