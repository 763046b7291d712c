"""Versioned schema: the indexes each version creates and the schema-version document.

MongoDB creates collections on first write, so "schema" here means the jobs
collection with its indexes (the unique ``(chain_id, position)`` index is what
makes a second continuation of a job fail) and a document
``{_id: "schema", version: n}`` in the meta collection. :meth:`migrate` applies
every migration above the stored version in order, then raises the stored
version with ``$max``: index creation is idempotent and the version only ever
grows, so concurrent runs from several processes are safe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import IndexModel

from queuert.records import JobStatus

SCHEMA_DOCUMENT_ID = "schema"


@dataclass(frozen=True, slots=True)
class IndexSpec:
    """One index of the collection of role ``collection`` (an attribute of
    :class:`~queuert_mongodb.names.Collections`; the jobs collection by default)."""

    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    partial: Mapping[str, Any] | None = None
    collection: str = "jobs"

    def options(self) -> dict[str, Any]:
        """The index options ``createIndexes`` takes besides the keys."""
        options: dict[str, Any] = {"name": self.name}
        if self.unique:
            options["unique"] = True
        if self.partial is not None:
            options["partialFilterExpression"] = dict(self.partial)
        return options

    def model(self) -> IndexModel:
        return IndexModel(list(self.keys), **self.options())


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    job_indexes: tuple[IndexSpec, ...] = field(default_factory=tuple)
    indexes: tuple[IndexSpec, ...] = field(default_factory=tuple)
    """Indexes of any collection, each naming its collection's role."""
    collections: tuple[str, ...] = field(default_factory=tuple)
    """Roles of the collections this version creates."""

    def index_groups(self) -> dict[str, tuple[IndexSpec, ...]]:
        """This version's indexes by collection role, the jobs collection's first."""
        groups: dict[str, list[IndexSpec]] = {}
        for spec in (*self.job_indexes, *self.indexes):
            groups.setdefault(spec.collection, []).append(spec)
        return {role: tuple(specs) for role, specs in groups.items()}


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        name="jobs indexes",
        job_indexes=(
            # A chain position is taken once: a second continuation of a job fails.
            IndexSpec("queuert_chain_position", (("chain_id", 1), ("position", 1)), unique=True),
            # Acquisition: eligible jobs of a queue in the order they are taken.
            IndexSpec(
                "queuert_acquire",
                (("queue", 1), ("scheduled_at", 1), ("priority", -1), ("_id", 1)),
                partial={"status": JobStatus.PENDING.value},
            ),
            # Reaping: running jobs by lease expiry.
            IndexSpec(
                "queuert_reap",
                (("leased_until", 1), ("_id", 1)),
                partial={"status": JobStatus.RUNNING.value},
            ),
            # Chain heads (next_job_id null) in chain id order, for reading chains.
            IndexSpec("queuert_chain_head", (("next_job_id", 1), ("chain_id", 1))),
        ),
    ),
    Migration(
        version=2,
        name="control, blockers, deduplication, limits and schedules",
        collections=("blockers", "dedup", "workers", "slots", "limits"),
        job_indexes=(
            # Purging: chain heads that ended, oldest end first.
            IndexSpec(
                "queuert_ended",
                (("next_job_id", 1), ("completed_at", 1)),
                partial={"completed_at": {"$type": "date"}},
            ),
            # Limited acquisition counts a queue's running jobs per key.
            IndexSpec(
                "queuert_running",
                (("queue", 1), ("concurrency_key", 1), ("leased_until", 1)),
                partial={"status": JobStatus.RUNNING.value},
            ),
            # Listing chains by deduplication key (held by a chain's first job).
            IndexSpec(
                "queuert_dedup_key",
                (("dedup_key", 1), ("_id", 1)),
                partial={"dedup_key": {"$type": "string"}},
            ),
        ),
        indexes=(
            # A job's blockers in order, once each position.
            IndexSpec(
                "queuert_blockers_job", (("job_id", 1), ("position", 1)), True, None, "blockers"
            ),
            # What a chain's end unblocks or fails.
            IndexSpec(
                "queuert_blockers_chain",
                (("blocker_chain_id", 1), ("job_id", 1)),
                collection="blockers",
            ),
            # Deleting a chain deletes the edges of its jobs.
            IndexSpec("queuert_blockers_waiting", (("chain_id", 1),), collection="blockers"),
            # A schedule's latest slot (the slot itself is the unique _id).
            IndexSpec(
                "queuert_slots_latest", (("schedule", 1), ("slot_time", -1)), collection="slots"
            ),
            IndexSpec("queuert_slots_chain", (("chain_id", 1),), collection="slots"),
            # Forgetting workers not seen for a while.
            IndexSpec("queuert_workers_seen", (("last_seen_at", 1),), collection="workers"),
        ),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version
"""The schema version this adapter reads and writes."""


def migration_plan(current: int | None) -> tuple[Migration, ...]:
    """The migrations a store at version ``current`` (``None``: never migrated)
    still needs, in order."""
    applied = current or 0
    return tuple(migration for migration in MIGRATIONS if migration.version > applied)


def version_update(version: int) -> dict[str, Any]:
    """Update of the schema document recording ``version``; never lowers it."""
    return {"$max": {"version": version}, "$currentDate": {"updated_at": True}}


def stored_version(document: Mapping[str, Any] | None) -> int | None:
    """The version a schema document records (``None`` without one)."""
    if document is None:
        return None
    version = document.get("version")
    return int(version) if isinstance(version, int) else None
