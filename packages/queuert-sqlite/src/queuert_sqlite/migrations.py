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
)

SCHEMA_VERSION = max(migration.version for migration in MIGRATIONS)
"""The schema version this adapter reads and writes."""
