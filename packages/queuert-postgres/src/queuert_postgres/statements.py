"""The SQL text of every operation, built once per schema and table prefix.

Time: every timestamp is the server's ``statement_timestamp()``, the start of
the current statement. Unlike ``now()`` (frozen at the start of the
transaction) it moves on inside a long caller transaction, so a lease renewed
late in a transaction is not shortened; unlike ``clock_timestamp()`` it is
constant within a statement and usable in index conditions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from queuert_postgres.names import Names

NOW = "statement_timestamp()"

_JOB_COLUMNS = (
    "id",
    "chain_id",
    "chain_name",
    "queue",
    "position",
    "status",
    "input::text",
    "attempt",
    "max_attempts",
    "priority",
    "scheduled_at",
    "created_at",
    "updated_at",
    "leased_by",
    "leased_until",
    "output::text",
    "error::text",
    "next_job_id",
    "completed_at",
    "trace_context",
    "has_blockers",
)


JOB_COLUMN_COUNT = len(_JOB_COLUMNS)
"""How many columns :func:`job_columns` selects: what a statement reads after them
starts at this index of the row."""


def job_columns(alias: str | None = None) -> str:
    """The select list read by :func:`queuert_postgres.rows.job_record`, in its order."""
    if alias is None:
        return ", ".join(_JOB_COLUMNS)
    return ", ".join(f"{alias}.{column}" for column in _JOB_COLUMNS)


def waiting_queues(names: Names, row: str) -> str:
    """For RETURNING after the job columns of a write that completes the job ``row``
    names: the distinct queues of the jobs still blocked on its chain, as a
    ``waiting_queues`` text array (NULL when there is none, or when the job
    continued its chain)."""
    return (
        f"(SELECT array_agg(DISTINCT d.queue) FROM {names.table('job_blockers')} AS b "
        f"JOIN {names.jobs} AS d ON d.id = b.job_id "
        f"WHERE b.blocker_chain_id = {row}.chain_id AND {row}.next_job_id IS NULL "
        "AND d.status = 'blocked') AS waiting_queues"
    )


def _ms(param: str) -> str:
    return f"({param}::bigint * interval '1 millisecond')"


def _channel(name: str) -> str:
    """A NOTIFY channel name as a string constant of the SQL text. Channel names are
    configuration, not values: :class:`SignalChannels` holds only names validated as
    lower-case letters, digits and underscores, which need no escaping."""
    if not _CHANNEL.match(name):
        raise ValueError(f"invalid channel name {name!r:.100}")
    return f"'{name}'"


_CHANNEL = re.compile(r"[a-z0-9_]+\Z")


@dataclass(frozen=True)
class SignalChannels:
    """The NOTIFY channels that write statements signal on (job scheduled, chain
    completed), when a notifier on the same database has been bound."""

    scheduled: str
    chain_completed: str


_ENDED = "('completed', 'failed', 'cancelled')"

# The one row of a creation: the statement's time, every new job's created_at. The
# rest of each new job's record is known to the caller, so no row per job comes back.
_CREATED_AT = "min(written.created_at)"


class Statements:
    """SQL for one :class:`Names`. Parameters are documented next to each statement."""

    def __init__(self, names: Names, signals: SignalChannels | None = None) -> None:
        jobs = names.jobs
        self.names = names
        self.signals = signals
        write = self._write
        lease = "id = $1 AND status = 'running' AND leased_by = $2 AND attempt = $3"
        cols = job_columns()
        chain_cols = (
            "h.chain_id, h.chain_name, h.status, f.input::text, h.output::text, h.error::text, "
            "h.id, h.queue, f.created_at, h.updated_at, h.completed_at, f.dedup_key"
        )
        self._chain_from = f"{jobs} h JOIN {jobs} f ON f.id = h.chain_id"
        self._chain_cols = chain_cols
        self.chain_cols = chain_cols
        """The select list of a chain row (``queuert_postgres.rows.chain_record``)."""
        self.chain_from = self._chain_from

        # $1 id, $2 chain_id, $3 chain_name, $4 queue, $5 position, $6 input,
        # $7 max_attempts, $8 priority, $9 scheduled_at, $10 delay_ms, $11 trace_context
        self.create_job = write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context)
            VALUES ($1, $2, $3, $4, $5, 'pending', $6::json, 0, $7, $8,
                COALESCE($9::timestamptz, {NOW} + {_ms("$10")}), {NOW}, {NOW}, $11)
            RETURNING created_at, queue, status
            """,
            result=_CREATED_AT,
            ends=False,
        )
        # The same, one array per column: a whole batch in one round trip.
        self.create_jobs = write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context)
            SELECT u.id, u.chain_id, u.chain_name, u.queue, u.position, 'pending',
                u.input::json, 0, u.max_attempts, u.priority,
                COALESCE(u.scheduled_at, {NOW} + {_ms("u.delay_ms")}), {NOW}, {NOW},
                u.trace_context
            FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[],
                $6::text[], $7::integer[], $8::integer[], $9::timestamptz[], $10::bigint[],
                $11::text[])
                AS u(id, chain_id, chain_name, queue, position, input, max_attempts, priority,
                     scheduled_at, delay_ms, trace_context)
            RETURNING created_at, queue, status
            """,
            result=_CREATED_AT,
            ends=False,
        )
        # The same for a batch of first jobs of chains (chain_id = id, position 0) that
        # share everything but id and input: $1 ids, $2 inputs, $3 chain_name,
        # $4 queue, $5 max_attempts, $6 priority, $7 scheduled_at, $8 delay_ms. Two
        # arrays to encode and unnest instead of ten.
        self.create_chain_starts = write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at)
            SELECT u.id, u.id, $3, $4, 0, 'pending', u.input::json, 0, $5, $6,
                COALESCE($7::timestamptz, {NOW} + {_ms("$8")}), {NOW}, {NOW}
            FROM unnest($1::text[], $2::text[]) AS u(id, input)
            RETURNING created_at, queue, status
            """,
            result=_CREATED_AT,
            ends=False,
        )
        # $1 queues (distinct), $2 limit, $3 owner, $4 lease_ms.
        # One index range per queue, each read in acquisition order and cut at the
        # limit, so a backlog on many queues never has to be sorted as a whole.
        self.acquire_jobs = f"""
            WITH picked AS (
                SELECT c.id
                FROM unnest($1::text[]) AS q(queue)
                CROSS JOIN LATERAL (
                    SELECT j.id, j.scheduled_at, j.priority
                    FROM {jobs} j
                    WHERE j.status = 'pending' AND j.queue = q.queue
                      AND j.scheduled_at <= {NOW}
                    ORDER BY j.scheduled_at, j.priority DESC, j.id
                    LIMIT $2
                    FOR UPDATE SKIP LOCKED
                ) c
                ORDER BY c.scheduled_at, c.priority DESC, c.id
                LIMIT $2
            )
            UPDATE {jobs} j
            SET status = 'running', attempt = j.attempt + 1, leased_by = $3,
                leased_until = {NOW} + {_ms("$4")}, updated_at = {NOW}
            FROM picked
            WHERE j.id = picked.id
            RETURNING {job_columns("j")}
        """
        # $1 id, $2 owner, $3 attempt, $4 lease_ms
        self.renew_lease = f"""
            UPDATE {jobs} SET leased_until = {NOW} + {_ms("$4")}, updated_at = {NOW}
            WHERE {lease}
            RETURNING leased_until
        """
        # $1 id, $2 owner, $3 attempt
        self.lock_job = f"SELECT {cols} FROM {jobs} WHERE {lease} FOR UPDATE"
        # A plain read: a row lock writes the tuple and so makes COMMIT wait for a flush.
        self.verify_lease = f"SELECT {cols} FROM {jobs} WHERE {lease}"
        # $1 id, $2 owner, $3 attempt, $4 output. Also returns the queues of the jobs
        # blocked on the chain, read in the statement's snapshot (before the trigger
        # unblocks them): every job the completion unblocks is among them, since its
        # completion is the one that finds it still blocked.
        self.complete_job = write(
            f"""
            UPDATE {jobs}
            SET status = 'completed', output = $4::json, leased_by = NULL,
                leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
            WHERE {lease}
            RETURNING {cols}, {waiting_queues(names, jobs)}
            """,
            schedules=False,
            unblocks=True,
        )
        # The same for many jobs: $1 ids, $2 owners, $3 attempts, $4 outputs. Rows are
        # locked in id order so that two such statements cannot deadlock.
        self.complete_jobs = write(
            f"""
            UPDATE {jobs} j
            SET status = 'completed', output = l.output::json, leased_by = NULL,
                leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
            FROM locked l
            WHERE j.id = l.id
            RETURNING {job_columns("j")}, {waiting_queues(names, "j")}
            """,
            f"""
            input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[])
                    AS u(id, owner, attempt, output)
            ), locked AS (
                SELECT j.id, u.output
                FROM {jobs} j JOIN input u ON u.id = j.id
                WHERE j.status = 'running' AND j.leased_by = u.owner AND j.attempt = u.attempt
                ORDER BY j.id
                FOR UPDATE OF j
            )
            """,
            schedules=False,
            unblocks=True,
        )
        # $1 id, $2 owner, $3 attempt, then the new job: $4 id, $5 chain_id,
        # $6 chain_name, $7 queue, $8 position, $9 input, $10 max_attempts,
        # $11 priority, $12 scheduled_at, $13 delay_ms, $14 trace_context.
        # Both writes in one statement; nothing is inserted when the lease check fails.
        self.continue_job = write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context)
            SELECT $4, $5, $6, $7, $8, 'pending', $9::json, 0, $10, $11,
                COALESCE($12::timestamptz, {NOW} + {_ms("$13")}), {NOW}, {NOW}, $14
            FROM old
            RETURNING {cols}
            """,
            f"""
            old AS (
                UPDATE {jobs}
                SET status = 'completed', next_job_id = $4, leased_by = NULL,
                    leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
                WHERE {lease}
                RETURNING id
            )
            """,
            ends=False,
        )
        # The same for many jobs, one array per parameter above (in that order).
        self.continue_jobs = write(
            f"""
            INSERT INTO {jobs} (id, chain_id, chain_name, queue, position, status, input,
                attempt, max_attempts, priority, scheduled_at, created_at, updated_at,
                trace_context)
            SELECT u.next_id, u.chain_id, u.chain_name, u.queue, u.position, 'pending',
                u.input::json, 0, u.max_attempts, u.priority,
                COALESCE(u.scheduled_at, {NOW} + {_ms("u.delay_ms")}), {NOW}, {NOW},
                u.trace_context
            FROM old JOIN input u ON u.id = old.id
            RETURNING {cols}
            """,
            f"""
            input AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[],
                    $5::text[], $6::text[], $7::text[], $8::integer[], $9::text[],
                    $10::integer[], $11::integer[], $12::timestamptz[], $13::bigint[],
                    $14::text[])
                    AS u(id, owner, attempt, next_id, chain_id, chain_name, queue, position,
                         input, max_attempts, priority, scheduled_at, delay_ms, trace_context)
            ), locked AS (
                SELECT j.id
                FROM {jobs} j JOIN input u ON u.id = j.id
                WHERE j.status = 'running' AND j.leased_by = u.owner AND j.attempt = u.attempt
                ORDER BY j.id
                FOR UPDATE OF j
            ), old AS (
                UPDATE {jobs} j
                SET status = 'completed', next_job_id = u.next_id, leased_by = NULL,
                    leased_until = NULL, completed_at = {NOW}, updated_at = {NOW}
                FROM locked l JOIN input u ON u.id = l.id
                WHERE j.id = l.id
                RETURNING j.id
            )
            """,
            ends=False,
        )
        # $1 id, $2 owner, $3 attempt, $4 scheduled_at, $5 delay_ms, $6 error,
        # $7 refunded attempts (0 or 1)
        self.reschedule_job = write(
            f"""
            UPDATE {jobs}
            SET status = 'pending', scheduled_at = COALESCE($4::timestamptz, {NOW} + {_ms("$5")}),
                error = $6::jsonb, leased_by = NULL, leased_until = NULL,
                attempt = attempt - $7::integer, updated_at = {NOW}
            WHERE {lease}
            RETURNING {cols}
            """,
            ends=False,
        )
        # $1 id, $2 owner, $3 attempt, $4 error
        self.fail_job = write(
            f"""
            UPDATE {jobs}
            SET status = 'failed', error = $4::jsonb, leased_by = NULL, leased_until = NULL,
                completed_at = {NOW}, updated_at = {NOW}
            WHERE {lease}
            RETURNING {cols}
            """,
            schedules=False,
        )
        # $1 limit, $2 error. Jobs locked by a finalizer are skipped: it may still commit.
        self.reap_expired_leases = write(
            f"""
            UPDATE {jobs} j
            SET status = CASE WHEN j.attempt >= j.max_attempts THEN 'failed' ELSE 'pending' END,
                scheduled_at = CASE WHEN j.attempt >= j.max_attempts
                    THEN j.scheduled_at ELSE {NOW} END,
                completed_at = CASE WHEN j.attempt >= j.max_attempts THEN {NOW} END,
                error = $2::jsonb, leased_by = NULL, leased_until = NULL, updated_at = {NOW}
            FROM expired
            WHERE j.id = expired.id
            RETURNING {job_columns("j")}
            """,
            f"""
            expired AS (
                SELECT id FROM {jobs}
                WHERE status = 'running' AND leased_until < {NOW}
                ORDER BY leased_until
                LIMIT $1
                FOR UPDATE SKIP LOCKED
            )
            """,
        )
        # $1 chain_id. The chain's last job is locked first, so the status tested is
        # the committed one and a concurrent finalizer is waited for.
        self.cancel_chain = f"""
            WITH head AS (
                SELECT id, chain_id, chain_name, status, queue, output::text AS output,
                    error::text AS error, updated_at, completed_at
                FROM {jobs}
                WHERE chain_id = $1 AND next_job_id IS NULL
                FOR UPDATE
            ), cancelled AS (
                UPDATE {jobs} j
                SET status = 'cancelled', completed_at = {NOW}, updated_at = {NOW}
                FROM head
                WHERE j.id = head.id AND head.status IN ('pending', 'blocked')
                RETURNING j.id, j.status, j.updated_at, j.completed_at, j.chain_id,
                    j.queue, j.next_job_id
            ){self._signal_cte("cancelled", schedules=False)}
            SELECT h.chain_id, h.chain_name, COALESCE(c.status, h.status), f.input::text,
                h.output, h.error, h.id, h.queue, f.created_at,
                COALESCE(c.updated_at, h.updated_at), COALESCE(c.completed_at, h.completed_at),
                f.dedup_key
            FROM head h
            JOIN {jobs} f ON f.id = h.chain_id
            LEFT JOIN cancelled c ON c.id = h.id{self._signals_sent()}
        """
        # $1 queues (distinct)
        self.time_until_next_job = f"""
            SELECT EXTRACT(EPOCH FROM min(n.scheduled_at) - {NOW})::float8
            FROM unnest($1::text[]) AS q(queue)
            CROSS JOIN LATERAL (
                SELECT j.scheduled_at FROM {jobs} j
                WHERE j.status = 'pending' AND j.queue = q.queue
                ORDER BY j.scheduled_at
                LIMIT 1
            ) n
        """
        # $1 id
        self.get_job = f"SELECT {cols} FROM {jobs} WHERE id = $1"
        # $1 chain_id
        self.get_chain = (
            f"SELECT {chain_cols} FROM {self._chain_from} "
            "WHERE h.chain_id = $1 AND h.next_job_id IS NULL"
        )
        # $1 chain ids
        self.delete_chains = f"""
            WITH deleted AS (
                DELETE FROM {jobs} WHERE chain_id = ANY($1::text[]) RETURNING chain_id
            )
            SELECT count(DISTINCT chain_id) FROM deleted
        """
        self._list_jobs: dict[tuple[bool, ...], str] = {}
        self._list_chains: dict[tuple[bool, ...], str] = {}

    # -- signals ---------------------------------------------------------------------

    def _write(
        self,
        dml: str,
        ctes: str | None = None,
        *,
        result: str | None = None,
        schedules: bool = True,
        ends: bool = True,
        unblocks: bool = False,
    ) -> str:
        """``dml`` (a write ending in RETURNING job columns, preceded by the CTEs
        ``ctes``) whose result is its rows, or the select list ``result`` over them;
        with signal channels, the statement also NOTIFYs what its rows mean,
        delivered when its transaction commits (see :meth:`_signal_cte`)."""
        if self.signals is None and result is None:
            return dml if ctes is None else f"WITH {ctes} {dml}"
        head = "" if ctes is None else f"{ctes}, "
        signals = self._signal_cte("written", schedules, ends, unblocks)
        return (
            f"WITH {head}written AS ({dml}){signals} "
            f"SELECT {result or 'written.*'} FROM written{self._signals_sent()}"
        )

    def _signal_cte(
        self, source: str, schedules: bool = True, ends: bool = True, unblocks: bool = False
    ) -> str:
        """A ``signalled`` CTE (after a comma) sending, for the job rows of ``source``,
        one job-scheduled count per queue of its pending jobs (if the write
        ``schedules`` jobs), one chain-completed signal per ended last job of a chain
        (if it ``ends`` chains) and one job-scheduled signal per queue of its
        ``waiting_queues`` column (if it ``unblocks`` jobs); empty without signal
        channels. The payloads are those of :func:`queuert_postgres.payloads.encode`:
        queue names (at most 120 characters) and chain ids are never long enough to
        be hashed."""
        if self.signals is None:
            return ""
        parts = []
        if unblocks:
            parts.append(
                f"SELECT {_channel(self.signals.scheduled)} AS channel, '1=' || q AS payload "
                f"FROM {source} w CROSS JOIN LATERAL unnest(w.waiting_queues) AS q"
            )
        if schedules:
            parts.append(
                f"SELECT {_channel(self.signals.scheduled)} AS channel, "
                f"count(*)::text || '=' || w.queue AS payload "
                f"FROM {source} w WHERE w.status = 'pending' GROUP BY w.queue"
            )
        if ends:
            parts.append(
                f"SELECT {_channel(self.signals.chain_completed)} AS channel, "
                f"'=' || w.chain_id AS payload "
                f"FROM {source} w WHERE w.status IN {_ENDED} AND w.next_job_id IS NULL"
            )
        union = " UNION ALL ".join(parts)
        return f", signalled AS (SELECT pg_notify(s.channel, s.payload) FROM ({union}) s)"

    def _signals_sent(self) -> str:
        # The main query must read the signalling CTE, or PostgreSQL never runs it.
        if self.signals is None:
            return ""
        return " CROSS JOIN (SELECT count(*) FROM signalled) AS sent"

    # -- listings ---------------------------------------------------------------------

    def list_jobs(
        self,
        *,
        after: bool,
        statuses: bool,
        chain_id: bool,
        queues: bool,
        created_after: bool = False,
        created_before: bool = False,
        newest: bool = False,
    ) -> str:
        """Listing SQL for one combination of filters (one statement per combination, so
        that each gets a plan using the right index). Parameters in order: after,
        statuses, chain_id, queues, created_after, created_before (those present), then
        limit; ``newest`` lists in descending id order."""
        key = (after, statuses, chain_id, queues, created_after, created_before, newest)
        sql = self._list_jobs.get(key)
        if sql is None:
            conditions: list[str] = []
            n = 0
            for present, template in (
                (after, "id < ${}" if newest else "id > ${}"),
                (statuses, "status = ANY(${}::text[])"),
                (chain_id, "chain_id = ${}"),
                (queues, "queue = ANY(${}::text[])"),
                (created_after, "created_at > ${}"),
                (created_before, "created_at < ${}"),
            ):
                if present:
                    n += 1
                    conditions.append(template.format(n))
            where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            sql = (
                f"SELECT {job_columns()} FROM {self.names.jobs} {where} "
                f"ORDER BY id{' DESC' if newest else ''} LIMIT ${n + 1}"
            )
            self._list_jobs[key] = sql
        return sql

    def list_chains(
        self,
        *,
        after: bool,
        statuses: bool,
        chain_names: bool,
        created_after: bool = False,
        created_before: bool = False,
        newest: bool = False,
        queues: bool = False,
    ) -> str:
        """Like :meth:`list_jobs`; parameters: after, statuses, chain_names,
        created_after, created_before, queues (of the chains' last jobs), then limit."""
        key = (after, statuses, chain_names, created_after, created_before, newest, queues)
        sql = self._list_chains.get(key)
        if sql is None:
            conditions = ["h.next_job_id IS NULL"]
            n = 0
            for present, template in (
                (after, "h.chain_id < ${}" if newest else "h.chain_id > ${}"),
                (statuses, "h.status = ANY(${}::text[])"),
                (chain_names, "h.chain_name = ANY(${}::text[])"),
                (created_after, "f.created_at > ${}"),
                (created_before, "f.created_at < ${}"),
                (queues, "h.queue = ANY(${}::text[])"),
            ):
                if present:
                    n += 1
                    conditions.append(template.format(n))
            sql = (
                f"SELECT {self._chain_cols} FROM {self._chain_from} "
                f"WHERE {' AND '.join(conditions)} "
                f"ORDER BY h.chain_id{' DESC' if newest else ''} LIMIT ${n + 1}"
            )
            self._list_chains[key] = sql
        return sql
