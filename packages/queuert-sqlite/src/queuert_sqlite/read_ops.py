"""The reading operations of the SQLite state adapter: jobs and chains, one or a
page at a time."""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from queuert.adapter_support import keyset_page
from queuert.records import ChainFilter, ChainRecord, JobFilter, JobRecord, Page
from queuert_sqlite.base import SqliteBase
from queuert_sqlite.clock import to_us
from queuert_sqlite.rows import chain_from_row, job_from_row
from queuert_sqlite.statements import JOB_COLUMNS

Connection = aiosqlite.Connection


class ReadOps(SqliteBase):
    """Jobs and chains as they are."""

    async def get_job(self, *, tx: Connection | None, job_id: str) -> JobRecord | None:
        rows = await self._db.read(tx, self._sql.get_job, (job_id,))
        return job_from_row(rows[0]) if rows else None

    async def list_jobs(
        self, *, tx: Connection | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        if limit <= 0:
            return Page(items=[], next_cursor=None)
        clauses: list[str] = []
        params: list[Any] = []
        if after is not None:
            clauses.append("id < ?" if filter.newest_first else "id > ?")
            params.append(after)
        if filter.created_after is not None:
            clauses.append("created_at > ?")
            params.append(to_us(filter.created_after, "created_after"))
        if filter.created_before is not None:
            clauses.append("created_at < ?")
            params.append(to_us(filter.created_before, "created_before"))
        if filter.statuses is not None:
            clauses.append("status IN (SELECT value FROM json_each(?))")
            params.append(json.dumps([str(status) for status in filter.statuses]))
        if filter.chain_id is not None:
            clauses.append("chain_id = ?")
            params.append(filter.chain_id)
        if filter.queues is not None:
            clauses.append("queue IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(filter.queues)))
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        params.append(limit)
        rows = await self._db.read(
            tx,
            f"SELECT {JOB_COLUMNS} FROM {self._sql.jobs_table}{where} "
            f"ORDER BY id{' DESC' if filter.newest_first else ''} LIMIT ?",
            params,
        )
        items = [job_from_row(row) for row in rows]
        return keyset_page(items, limit)

    async def get_chain(self, *, tx: Connection | None, chain_id: str) -> ChainRecord | None:
        rows = await self._db.read(tx, self._sql.get_chain, (chain_id,))
        return chain_from_row(rows[0]) if rows else None

    async def list_chains(
        self, *, tx: Connection | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        if limit <= 0:
            return Page(items=[], next_cursor=None)
        sql = self._sql.chain_select
        params: list[Any] = []
        if after is not None:
            sql += " AND l.chain_id < ?" if filter.newest_first else " AND l.chain_id > ?"
            params.append(after)
        if filter.created_after is not None:
            sql += " AND f.created_at > ?"
            params.append(to_us(filter.created_after, "created_after"))
        if filter.created_before is not None:
            sql += " AND f.created_at < ?"
            params.append(to_us(filter.created_before, "created_before"))
        if filter.statuses is not None:
            sql += " AND l.status IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([str(status) for status in filter.statuses]))
        if filter.chain_names is not None:
            sql += " AND l.chain_name IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(filter.chain_names)))
        if filter.dedup_key is not None:
            sql += " AND f.dedup_key = ?"
            params.append(filter.dedup_key)
        if filter.queues is not None:
            sql += " AND l.queue IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(list(filter.queues)))
        sql += f" ORDER BY l.chain_id{' DESC' if filter.newest_first else ''} LIMIT ?"
        params.append(limit)
        rows = await self._db.read(tx, sql, params)
        items = [chain_from_row(row) for row in rows]
        return keyset_page(items, limit)
