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
    """One index of the jobs collection."""

    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    partial: Mapping[str, Any] | None = None

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
