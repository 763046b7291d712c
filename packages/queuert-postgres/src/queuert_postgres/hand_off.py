"""The completion that hands a job's place under its queue's concurrency limit to
the next job (``complete_job_and_hand_off``), in one statement.

Race-freedom without the queue's advisory lock: the statement ends each job and
leases at most as many jobs of the same queue (key) as it ends, so the number
running never rises, whatever acquirers count meanwhile. Two conditions keep it
so. The completed job's lease must still have the caller's margin to run,
checked on the server's clock after the job's row is locked: an acquirer counts
an expired lease as a free place, and must not fill the place while this
statement hands it on. And the queue (key) must not be over its limit (a limit
lowered below the number running): then only as many are handed on as bring the
number running back under it.

Completions running at the same time share one statement, as plain completions
do (:mod:`queuert.batching`); each place is handed on within the group of its
owner, queue and (per key) key, and each call gets at most one job of its
owner's and queue's.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import asyncpg

from queuert.batching import Batcher
from queuert.errors import LeaseLostError
from queuert.records import JobRecord, Lease
from queuert_postgres.adapter_base import PostgresAdapterBase
from queuert_postgres.rows import completed_record, completion_signals, job_record
from queuert_postgres.statements import JOB_COLUMN_COUNT, NOW, Statements, job_columns
from queuert_postgres.statements import waiting_queues as waiting_queues_column


@dataclass(frozen=True, slots=True)
class HandOff:
    """One call's completion and what its place is handed on under."""

    lease: Lease
    output: str
    lease_ms: int
    concurrency_limit: int
    per_key: bool
    lease_margin_ms: int


Completion = tuple[asyncpg.Record, asyncpg.Record | None]
"""A call's completed row and the row of the job handed its place, if any."""


def _in_group(alias: str) -> str:
    """Whether the job ``alias`` is in the group of the place ``p``: its queue, and
    with ``p.per_key`` its key (``p.k``; jobs without a key are one group)."""
    return (
        f"{alias}.queue = p.queue AND (NOT p.per_key "
        f"OR (p.k IS NULL AND {alias}.concurrency_key IS NULL) "
        f"OR {alias}.concurrency_key = p.k)"
    )


def _candidates(jobs: str, keyed: bool) -> str:
    """The jobs handed the places of ``places`` (alias ``p``) whose key is set
    (``keyed``: read through the index of keyed pending jobs) or not."""
    # The key in the index condition, not a filter: a keyed group reads only the
    # rows of its own key.
    running = "r.queue = p.queue AND r.concurrency_key = p.k" if keyed else _in_group("r")
    match = "x.concurrency_key = p.k" if keyed else _in_group("x")
    return f"""
        SELECT c.id, p.owner, p.lease_ms FROM places AS p
        CROSS JOIN LATERAL (
            SELECT count(*)::integer AS n FROM {jobs} AS r
            WHERE r.status = 'running' AND r.leased_until > {NOW} AND {running}
        ) AS running
        CROSS JOIN LATERAL (
            SELECT x.id FROM {jobs} AS x
            WHERE x.status = 'pending' AND x.queue = p.queue AND {match}
                AND x.scheduled_at <= {NOW}
            ORDER BY x.scheduled_at, x.priority DESC, x.id
            LIMIT greatest(0, least(p.n, p.lim - running.n + p.n))
            FOR UPDATE SKIP LOCKED
        ) AS c
        WHERE p.k IS {"NOT " if keyed else ""}NULL"""


class HandOffStatements:
    """The hand-off statement over the tables (and signal channels) of one
    :class:`Statements`."""

    def __init__(self, sql: Statements) -> None:
        jobs = sql.names.jobs
        # $1 ids, $2 owners, $3 attempts, $4 outputs, $5 lease_ms, $6 concurrency
        # limits, $7 per key, $8 lease margins (ms). Rows: each completed job (its
        # columns, its waiting_queues, false), then each handed job (its columns,
        # NULL, true). Completed rows are locked in id order, as complete_jobs does.
        signals = sql._signal_cte("written", schedules=False, ends=True, unblocks=True)
        self.complete_and_hand_off = f"""
            WITH input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[],
                    $5::bigint[], $6::integer[], $7::boolean[], $8::bigint[])
                    AS u(id, owner, attempt, output, lease_ms, lim, per_key, margin_ms)
            ), locked AS (
                SELECT j.id, j.queue, j.concurrency_key, j.leased_until, u.owner, u.output,
                    u.lease_ms, u.lim, u.per_key, u.margin_ms
                FROM {jobs} j JOIN input u ON u.id = j.id
                WHERE j.status = 'running' AND j.leased_by = u.owner AND j.attempt = u.attempt
                ORDER BY j.id
                FOR UPDATE OF j
            ), places AS (
                -- clock_timestamp(): the time after the rows were locked, not the
                -- statement's start.
                SELECT l.owner, l.queue, l.per_key,
                    CASE WHEN l.per_key THEN l.concurrency_key END AS k,
                    count(*)::integer AS n, max(l.lease_ms) AS lease_ms, min(l.lim) AS lim
                FROM locked AS l
                WHERE l.leased_until > clock_timestamp()
                    AND l.leased_until
                        >= clock_timestamp() + l.margin_ms * interval '1 millisecond'
                GROUP BY 1, 2, 3, 4
            ), handed AS (
                {_candidates(jobs, keyed=True)}
                UNION ALL
                {_candidates(jobs, keyed=False)}
            ), leased AS (
                -- Through the ids as an array: joined with the CTE, whose size the
                -- planner cannot tell, the update may scan the whole table.
                UPDATE {jobs} AS j
                SET status = 'running', attempt = j.attempt + 1, leased_by = h.owner,
                    leased_until = {NOW} + h.lease_ms * interval '1 millisecond',
                    updated_at = {NOW}
                FROM handed AS h
                WHERE j.id = ANY (ARRAY(SELECT id FROM handed)) AND j.id = h.id
                RETURNING {job_columns("j")}
            ), written AS (
                UPDATE {jobs} AS j
                SET status = 'completed', output = l.output::json, leased_by = NULL,
                    leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
                FROM locked AS l
                WHERE j.id = l.id
                RETURNING {job_columns("j")}, {waiting_queues_column(sql.names, "j")}
            ){signals}
            SELECT written.*, false AS handed FROM written{sql._signals_sent()}
            UNION ALL
            SELECT leased.*, NULL::text[], true FROM leased
        """


@lru_cache(maxsize=64)
def hand_off_statements(sql: Statements) -> HandOffStatements:
    """The hand-off statements of ``sql`` (built once per :class:`Statements`)."""
    return HandOffStatements(sql)


class HandOffOps(PostgresAdapterBase):
    """``complete_job_and_hand_off`` (part of
    :class:`~queuert_postgres.PostgresStateAdapter`)."""

    _hand_offs: Batcher[HandOff, Completion]

    async def complete_job_and_hand_off(
        self,
        *,
        lease: Lease,
        output: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
        lease_margin_ms: int,
    ) -> tuple[JobRecord, JobRecord | None]:
        """As the port says: one statement in a transaction of its own, shared with
        the hand-offs running at the same time (see :mod:`queuert_postgres.hand_off`)."""
        self._check_not_holding()
        result = await self._hand_offs.submit(
            HandOff(lease, output, lease_ms, concurrency_limit, per_key, lease_margin_ms)
        )
        if result is None:
            raise LeaseLostError(lease.job_id)
        row, handed = result
        return completed_record(row), None if handed is None else job_record(handed)

    async def _hand_off_many(self, items: Sequence[HandOff]) -> dict[str, Completion | Exception]:
        # In the adapter's own transaction: the signals leave after its commit.
        quiet = self._after_commit.bound
        sql = self._quiet_sql if quiet else self._sql
        rows = await self._fetch(
            None,
            hand_off_statements(sql).complete_and_hand_off,
            [item.lease.job_id for item in items],
            [item.lease.owner for item in items],
            [item.lease.attempt for item in items],
            [item.output for item in items],
            [item.lease_ms for item in items],
            [item.concurrency_limit for item in items],
            [item.per_key for item in items],
            [item.lease_margin_ms for item in items],
        )
        handed_flag = JOB_COLUMN_COUNT + 1
        completed = {row[0]: row for row in rows if not row[handed_flag]}
        # Handed jobs go to the calls of their owner and queue, one each.
        handed: defaultdict[tuple[str, str], deque[asyncpg.Record]] = defaultdict(deque)
        for row in rows:
            if row[handed_flag]:
                handed[(row[13], row[3])].append(row)  # leased_by, queue
        if quiet and completed:
            self._after_commit.send(
                [s for row in completed.values() for s in completion_signals(row)]
            )
        results: dict[str, Completion | Exception] = {}
        for item in items:
            done = completed.get(item.lease.job_id)
            if done is None:
                continue
            waiting = handed.get((item.lease.owner, done[3]))
            results[item.lease.job_id] = (done, waiting.popleft() if waiting else None)
        return results
