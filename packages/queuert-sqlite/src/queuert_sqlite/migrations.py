"""Versioned schema migrations.

Each migration is applied once, in version order, inside the same
``BEGIN IMMEDIATE`` transaction that records it in the migrations table, so
concurrent ``migrate()`` calls from several processes serialise and the later
ones find nothing left to do. Table and index names carry the adapter's table
prefix.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``statements`` are templates over ``{prefix}``."""

    version: int
    name: str
    statements: tuple[str, ...]

    def render(self, prefix: str) -> list[str]:
        return [statement.format(prefix=prefix) for statement in self.statements]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="create jobs",
        statements=(
            """
            CREATE TABLE {prefix}jobs (
                id TEXT PRIMARY KEY NOT NULL,
                chain_id TEXT NOT NULL,
                chain_name TEXT NOT NULL,
                queue TEXT NOT NULL,
                position INTEGER NOT NULL,
                status TEXT NOT NULL,
                input TEXT NOT NULL,
                attempt INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                priority INTEGER NOT NULL DEFAULT 0,
                scheduled_at INTEGER NOT NULL,
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                leased_by TEXT,
                leased_until INTEGER,
                output TEXT,
                error TEXT,
                next_job_id TEXT,
                completed_at INTEGER,
                UNIQUE (chain_id, position)
            )
            """,
            # Acquisition: eligible jobs of one queue in the order they are taken.
            """
            CREATE INDEX {prefix}jobs_acquire
            ON {prefix}jobs (queue, scheduled_at, priority DESC, id)
            WHERE status = 'pending'
            """,
            # Reaping: running jobs by lease expiry.
            """
            CREATE INDEX {prefix}jobs_reap
            ON {prefix}jobs (leased_until)
            WHERE status = 'running'
            """,
            # Chain heads: the last job of each chain, in chain id order for listing.
            """
            CREATE INDEX {prefix}jobs_chain_head
            ON {prefix}jobs (chain_id)
            WHERE next_job_id IS NULL
            """,
        ),
    ),
    Migration(
        version=2,
        name="worker records and ended-chain index",
        statements=(
            """
            CREATE TABLE {prefix}workers (
                id TEXT PRIMARY KEY NOT NULL,
                host TEXT NOT NULL,
                pid INTEGER NOT NULL,
                queues TEXT NOT NULL,
                concurrency INTEGER NOT NULL,
                purges INTEGER NOT NULL DEFAULT 0,
                started_at INTEGER NOT NULL,
                last_seen_at INTEGER NOT NULL
            )
            """,
            # Purging: chains' last jobs by the time they ended.
            """
            CREATE INDEX {prefix}jobs_ended
            ON {prefix}jobs (completed_at)
            WHERE next_job_id IS NULL AND completed_at IS NOT NULL
            """,
        ),
    ),
    # This step touches only what it creates, so
    # it applies the same on top of version 1 alone or of versions 1 and 2.
    Migration(
        version=3,
        name="blockers and deduplication",
        statements=(
            # The deduplication key a chain was started with, on its first job.
            "ALTER TABLE {prefix}jobs ADD COLUMN dedup_key TEXT",
            """
            CREATE INDEX {prefix}jobs_dedup_key
            ON {prefix}jobs (dedup_key) WHERE dedup_key IS NOT NULL
            """,
            # Who holds each key: the primary key makes one holder per (chain, key).
            """
            CREATE TABLE {prefix}job_dedup (
                chain_name TEXT NOT NULL,
                dedup_key TEXT NOT NULL,
                chain_id TEXT NOT NULL,
                taken_at INTEGER NOT NULL,
                PRIMARY KEY (chain_name, dedup_key)
            ) WITHOUT ROWID
            """,
            # Distinct blocker chains of a blocked job that have not completed yet.
            "ALTER TABLE {prefix}jobs ADD COLUMN blockers_left INTEGER NOT NULL DEFAULT 0",
            # 1: the job runs once its blockers ended, however (on_blocker_failure="run").
            "ALTER TABLE {prefix}jobs ADD COLUMN run_on_blocker_failure INTEGER NOT NULL DEFAULT 0",
            """
            CREATE TABLE {prefix}job_blockers (
                job_id TEXT NOT NULL REFERENCES {prefix}jobs (id) ON DELETE CASCADE,
                position INTEGER NOT NULL,
                blocker_chain_id TEXT NOT NULL,
                PRIMARY KEY (job_id, position)
            ) WITHOUT ROWID
            """,
            """
            CREATE INDEX {prefix}job_blockers_chain
            ON {prefix}job_blockers (blocker_chain_id)
            """,
            # A chain completes when its last job completes without continuing: in that
            # same statement, jobs waiting on it count one blocker less and become
            # pending with the last.
            """
            CREATE TRIGGER {prefix}jobs_unblock
            AFTER UPDATE OF status ON {prefix}jobs
            WHEN NEW.status = 'completed' AND NEW.next_job_id IS NULL
                AND OLD.status <> 'completed'
            BEGIN
                UPDATE {prefix}jobs SET
                    blockers_left = blockers_left - 1,
                    status = CASE WHEN blockers_left <= 1 THEN 'pending' ELSE 'blocked' END,
                    updated_at = NEW.updated_at
                WHERE status = 'blocked' AND id IN (
                    SELECT job_id FROM {prefix}job_blockers
                    WHERE blocker_chain_id = NEW.chain_id
                );
            END
            """,
            # A chain that ends failed or cancelled fails the jobs waiting on it, whose
            # chains end with them (the adapter's connections enable recursive
            # triggers, so the failure reaches the jobs waiting on those in turn),
            # and counts as ended for the jobs that run however. The error is
            # queuert.blockers.blocker_error's.
            """
            CREATE TRIGGER {prefix}jobs_blocker_failed
            AFTER UPDATE OF status ON {prefix}jobs
            WHEN NEW.status IN ('failed', 'cancelled') AND NEW.next_job_id IS NULL
                AND OLD.status <> NEW.status
            BEGIN
                UPDATE {prefix}jobs SET
                    blockers_left = blockers_left - 1,
                    status = CASE WHEN blockers_left <= 1 THEN 'pending' ELSE 'blocked' END,
                    updated_at = NEW.updated_at
                WHERE status = 'blocked' AND run_on_blocker_failure = 1 AND id IN (
                    SELECT job_id FROM {prefix}job_blockers
                    WHERE blocker_chain_id = NEW.chain_id
                );
                UPDATE {prefix}jobs SET
                    status = 'failed',
                    error = json_object(
                        'type', 'queuert.errors.BlockerFailedError',
                        'message', 'blocker chain ''' || NEW.chain_id || ''' ended '
                            || NEW.status,
                        'traceback', NULL
                    ),
                    blockers_left = 0,
                    completed_at = NEW.updated_at,
                    updated_at = NEW.updated_at
                WHERE status = 'blocked' AND run_on_blocker_failure = 0 AND id IN (
                    SELECT job_id FROM {prefix}job_blockers
                    WHERE blocker_chain_id = NEW.chain_id
                );
            END
            """,
        ),
    ),
    Migration(
        version=4,
        name="store trace context",
        statements=("ALTER TABLE {prefix}jobs ADD COLUMN trace_context TEXT",),
    ),
    Migration(
        version=5,
        name="concurrency keys and schedule slots",
        statements=(
            # Added at the end of the table: other versions add their own columns.
            "ALTER TABLE {prefix}jobs ADD COLUMN concurrency_key TEXT",
            # Acquisition under a limit counts a queue's running jobs (per key).
            """
            CREATE INDEX {prefix}jobs_limit_running
            ON {prefix}jobs (queue, concurrency_key)
            WHERE status = 'running'
            """,
            # One row per started slot of a schedule: the key deduplicates slot starts.
            """
            CREATE TABLE {prefix}schedule_slots (
                schedule TEXT NOT NULL,
                slot_time INTEGER NOT NULL,
                chain_id TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                PRIMARY KEY (schedule, slot_time)
            )
            """,
            "CREATE INDEX {prefix}schedule_slots_chain ON {prefix}schedule_slots (chain_id)",
        ),
    ),
    Migration(
        version=6,
        name="rate limits over a sliding window",
        statements=(
            # The start log of rate-limited queues (see queuert_sqlite.rates).
            """
            CREATE TABLE {prefix}rate_starts (
                queue TEXT NOT NULL,
                rate_key TEXT NOT NULL,
                started_at INTEGER NOT NULL
            )
            """,
            """
            CREATE INDEX {prefix}rate_starts_queue_key
            ON {prefix}rate_starts (queue, rate_key, started_at)
            """,
        ),
    ),
    Migration(
        version=7,
        name="index of keyed pending jobs",
        statements=(
            # Per-key acquisition reads each key's first pending jobs. Only keyed jobs
            # are in it, so that queues without per-key limits pay nothing for it.
            """
            CREATE INDEX {prefix}jobs_limit_pending
            ON {prefix}jobs (queue, concurrency_key, scheduled_at, priority DESC, id)
            WHERE status = 'pending' AND concurrency_key IS NOT NULL
            """,
        ),
    ),
    Migration(
        version=8,
        name="jobs say whether they were created with blockers",
        statements=(
            # Read with every acquired job: only those created with blockers cost the
            # read of their blockers' outputs.
            "ALTER TABLE {prefix}jobs ADD COLUMN has_blockers INTEGER NOT NULL DEFAULT 0",
            """
            UPDATE {prefix}jobs SET has_blockers = 1
            WHERE id IN (SELECT job_id FROM {prefix}job_blockers)
            """,
        ),
    ),
)

SCHEMA_VERSION = max(migration.version for migration in MIGRATIONS)
"""The schema version this adapter reads and writes."""
