"""Versioned schema migrations.

Each step runs once, in order, inside the migrating transaction, and is
recorded in the migrations table. Steps are only ever appended: a released
step is never edited.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from queuert_postgres.connections import PostgresTx
from queuert_postgres.limits import acquire_function_steps, key_walk_steps
from queuert_postgres.names import Names
from queuert_postgres.rates import create_rate_starts


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: Callable[[Names], list[str]]


def _create_jobs(n: Names) -> list[str]:
    jobs = n.jobs
    return [
        f"""
        CREATE TABLE {jobs} (
            id text COLLATE "C" PRIMARY KEY,
            chain_id text COLLATE "C" NOT NULL,
            chain_name text NOT NULL,
            queue text NOT NULL,
            position integer NOT NULL,
            status text NOT NULL CONSTRAINT {n.name("jobs_status_check")} CHECK (status IN
                ('blocked', 'pending', 'running', 'completed', 'failed', 'cancelled')),
            -- json, not jsonb: inputs and outputs must come back exactly as given
            -- (key order, spacing, number spelling); json validates but keeps the text.
            input json NOT NULL,
            attempt integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL,
            priority integer NOT NULL DEFAULT 0,
            scheduled_at timestamptz NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            leased_by text,
            leased_until timestamptz,
            output json,
            error jsonb,  -- written by queuert itself; jsonb makes it queryable
            next_job_id text COLLATE "C",
            completed_at timestamptz,
            CONSTRAINT {n.name("jobs_chain_position_key")} UNIQUE (chain_id, position)
        ) WITH (
            -- Every job is updated a few times and then left alone: vacuum early so
            -- that dead versions do not pile up in the pending and running indexes.
            autovacuum_vacuum_scale_factor = 0.02,
            autovacuum_analyze_scale_factor = 0.02
        )
        """,
        # Acquisition and time_until_next_job: only pending jobs, in acquisition order.
        f"""
        CREATE INDEX {n.name("jobs_pending_idx")} ON {jobs}
            (queue, scheduled_at, priority DESC, id) WHERE status = 'pending'
        """,
        # Reaping: only running jobs, by lease expiry. "leased_until IS NOT NULL" is
        # always true of a running job; it is in the predicate so that the planner
        # cannot use this index for the lease-guarded statements (id = $1 AND status =
        # 'running' ...), which must look the job up by primary key however stale
        # the statistics on running jobs are. The reaper's "leased_until < now"
        # implies it.
        f"""
        CREATE INDEX {n.name("jobs_running_lease_idx")} ON {jobs}
            (leased_until) WHERE status = 'running' AND leased_until IS NOT NULL
        """,
        # A chain's current last job ("head"), and chain listing in id order.
        f"""
        CREATE INDEX {n.name("jobs_chain_head_idx")} ON {jobs}
            (chain_id) WHERE next_job_id IS NULL
        """,
        # Listing and deleting by chain use the (chain_id, position) unique index.
    ]


def _add_concurrency_keys(n: Names) -> list[str]:
    jobs = n.jobs
    return [
        # At the end of the table: other versions add columns of their own.
        f"ALTER TABLE {jobs} ADD COLUMN concurrency_key text",
        # Acquisition under a limit counts a queue's running jobs (per key).
        f"""
        CREATE INDEX {n.name("jobs_limit_running_idx")} ON {jobs}
            (queue, concurrency_key) WHERE status = 'running'
        """,
        # One row per started slot of a schedule: the key deduplicates slot starts.
        f"""
        CREATE TABLE {n.table("schedule_slots")} (
            schedule text NOT NULL,
            slot_time timestamptz NOT NULL,
            chain_id text COLLATE "C" NOT NULL,
            created_at timestamptz NOT NULL DEFAULT statement_timestamp(),
            CONSTRAINT {n.name("schedule_slots_pkey")} PRIMARY KEY (schedule, slot_time)
        )
        """,
        f"""
        CREATE INDEX {n.name("schedule_slots_chain_idx")} ON {n.table("schedule_slots")}
            (chain_id)
        """,
    ]


def _workers_and_ended_index(n: Names) -> list[str]:
    return [
        f"""
        CREATE TABLE {n.table("workers")} (
            id text COLLATE "C" PRIMARY KEY,
            host text NOT NULL,
            pid integer NOT NULL,
            queues text[] NOT NULL,
            concurrency integer NOT NULL,
            purges boolean NOT NULL DEFAULT false,
            started_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL
        )
        """,
        # Purging: chains' last jobs by the time they ended.
        f"""
        CREATE INDEX {n.name("jobs_ended_idx")} ON {n.jobs}
            (completed_at) WHERE next_job_id IS NULL AND completed_at IS NOT NULL
        """,
    ]


def _blockers(n: Names) -> list[str]:
    jobs = n.jobs
    blockers = n.table("job_blockers")
    ended = n.table("jobs_chain_ended")
    # The error is queuert.blockers.blocker_error's.
    failure = (
        "jsonb_build_object('type', 'queuert.errors.BlockerFailedError', "
        "'message', 'blocker chain ''' || NEW.chain_id || ''' ended ' || NEW.status, "
        "'traceback', NULL)"
    )
    return [
        # The deduplication key a chain was started with, on its first job.
        f"ALTER TABLE {jobs} ADD COLUMN dedup_key text",
        f"""
        CREATE INDEX {n.name("jobs_dedup_key_idx")} ON {jobs} (dedup_key)
            WHERE dedup_key IS NOT NULL
        """,
        # Who holds each key: the primary key (a unique index) makes one holder per
        # (chain name, key), whatever the number of transactions taking it at once.
        f"""
        CREATE TABLE {n.table("job_dedup")} (
            chain_name text NOT NULL,
            dedup_key text NOT NULL,
            chain_id text COLLATE "C" NOT NULL,
            taken_at timestamptz NOT NULL,
            CONSTRAINT {n.name("job_dedup_pkey")} PRIMARY KEY (chain_name, dedup_key)
        )
        """,
        # Distinct blocker chains of a blocked job that have not completed yet.
        f"ALTER TABLE {jobs} ADD COLUMN blockers_left integer NOT NULL DEFAULT 0",
        # The job runs once its blockers ended, however (on_blocker_failure="run").
        f"ALTER TABLE {jobs} ADD COLUMN run_on_blocker_failure boolean NOT NULL DEFAULT false",
        f"""
        CREATE TABLE {blockers} (
            job_id text COLLATE "C" NOT NULL
                CONSTRAINT {n.name("job_blockers_job_fkey")}
                REFERENCES {jobs} (id) ON DELETE CASCADE,
            position integer NOT NULL,
            blocker_chain_id text COLLATE "C" NOT NULL,
            CONSTRAINT {n.name("job_blockers_pkey")} PRIMARY KEY (job_id, position)
        )
        """,
        f"CREATE INDEX {n.name('job_blockers_chain_idx')} ON {blockers} (blocker_chain_id)",
        # Runs in the statement that ends a chain (its last job completes without
        # continuing, fails or is cancelled), whichever operation that is. Its
        # statements take snapshots of their own (a VOLATILE function), so they see
        # the waits of every transaction that committed before: one that makes a job
        # wait holds a share lock on the blocker chain's last job until it commits,
        # so the statement ending that chain waits for it. Decrementing a waiting
        # job's count updates its row, so two blockers completing in two
        # transactions at once serialise on it and the second sees the first's count.
        f"""
        CREATE FUNCTION {ended}() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            -- A completed blocker counts down every waiting job; a failed or cancelled
            -- one only those that run however.
            UPDATE {jobs} AS j SET
                blockers_left = j.blockers_left - 1,
                status = CASE WHEN j.blockers_left <= 1 THEN 'pending' ELSE 'blocked' END,
                updated_at = statement_timestamp()
            WHERE j.status = 'blocked'
                AND (NEW.status = 'completed' OR j.run_on_blocker_failure)
                AND j.id IN (
                    SELECT b.job_id FROM {blockers} AS b
                    WHERE b.blocker_chain_id = NEW.chain_id
                );
            IF NEW.status <> 'completed' THEN
                -- Fails the waiting jobs, whose chains end with them: the trigger
                -- fires again for those and reaches the jobs waiting on them.
                UPDATE {jobs} AS j SET
                    status = 'failed',
                    error = {failure},
                    blockers_left = 0,
                    completed_at = statement_timestamp(),
                    updated_at = statement_timestamp()
                WHERE j.status = 'blocked' AND NOT j.run_on_blocker_failure AND j.id IN (
                    SELECT b.job_id FROM {blockers} AS b
                    WHERE b.blocker_chain_id = NEW.chain_id
                );
            END IF;
            RETURN NULL;
        END
        $body$
        """,
        f"""
        CREATE TRIGGER {n.name("jobs_chain_ended")}
        AFTER UPDATE OF status ON {jobs}
        FOR EACH ROW
        WHEN (NEW.status IN ('completed', 'failed', 'cancelled')
            AND NEW.next_job_id IS NULL AND OLD.status IS DISTINCT FROM NEW.status)
        EXECUTE FUNCTION {ended}()
        """,
    ]


def _add_trace_context(n: Names) -> list[str]:
    return [f"ALTER TABLE {n.jobs} ADD COLUMN trace_context text"]


def _job_blocker_flags(n: Names) -> list[str]:
    # Read with every acquired job: only those created with blockers cost the read
    # of their blockers' outputs.
    return [
        f"ALTER TABLE {n.jobs} ADD COLUMN has_blockers boolean NOT NULL DEFAULT false",
        f"UPDATE {n.jobs} SET has_blockers = true "
        f"WHERE id IN (SELECT job_id FROM {n.table('job_blockers')})",
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "create jobs", _create_jobs),
    Migration(2, "worker records and ended-chain index", _workers_and_ended_index),
    Migration(3, "blockers and deduplication", _blockers),
    Migration(4, "store trace context", _add_trace_context),
    Migration(5, "concurrency keys and schedule slots", _add_concurrency_keys),
    Migration(6, "rate limits over a sliding window", create_rate_starts),
    Migration(7, "limited acquisition in one call", acquire_function_steps),
    Migration(8, "jobs say whether they were created with blockers", _job_blocker_flags),
    Migration(9, "per-key acquisition walks keys instead of the backlog", key_walk_steps),
)
"""Every step, in version order. Versions need not be contiguous: each is applied
and checked on its own."""

LATEST_VERSION = max(migration.version for migration in MIGRATIONS)


async def applied_versions(conn: PostgresTx, names: Names) -> set[int]:
    """Versions recorded in the migrations table (raises UndefinedTableError when the
    table or schema is missing)."""
    rows = await conn.fetch(f"SELECT version FROM {names.migrations}")
    return {int(row[0]) for row in rows}


async def missing_tables(conn: PostgresTx, names: Names) -> list[str]:
    """The tables the migrations create that do not exist (as qualified names)."""
    tables = [names.jobs]
    found = await conn.fetch(
        "SELECT t.name FROM unnest($1::text[]) AS t(name) WHERE to_regclass(t.name) IS NULL",
        tables,
    )
    return [row[0] for row in found]


async def migrate(conn: PostgresTx, names: Names) -> list[int]:
    """Apply the pending steps in one transaction on ``conn`` and return their versions.

    A transaction-scoped advisory lock keyed on the schema and prefix makes
    concurrent callers wait for each other; the later ones find nothing to do.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", names.migration_lock_key)
        schema_exists = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", names.schema
        )
        if not schema_exists:
            # Checked first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
            # database even when the schema is already there.
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{names.schema}"')
        await conn.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {names.migrations} (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT statement_timestamp()
            )
            """
        )
        done = await applied_versions(conn, names)
        applied: list[int] = []
        for step in MIGRATIONS:
            if step.version in done:
                continue
            for statement in step.statements(names):
                await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {names.migrations} (version, name) VALUES ($1, $2)",
                step.version,
                step.name,
            )
            applied.append(step.version)
        return applied


def script(names: Names) -> list[str]:
    """The statements :func:`migrate` runs on an empty database, with the records of
    the versions, for teams that apply schema changes with their own tools."""
    statements = [
        f'CREATE SCHEMA IF NOT EXISTS "{names.schema}"',
        f"CREATE TABLE IF NOT EXISTS {names.migrations} (version integer PRIMARY KEY, "
        "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT statement_timestamp())",
    ]
    for step in MIGRATIONS:
        statements += [textwrap.dedent(text).strip() for text in step.statements(names)]
        statements.append(
            f"INSERT INTO {names.migrations} (version, name) "
            f"VALUES ({int(step.version)}, '{step.name}')"
        )
    return statements
