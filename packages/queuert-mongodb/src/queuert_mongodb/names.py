"""Database and collection names: validation and the collections one prefix names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from queuert.errors import ConfigurationError

DEFAULT_DATABASE = "queuert"
DEFAULT_PREFIX = "queuert_"

_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")
# MongoDB refuses these in database names on every platform it runs on.
_DATABASE_FORBIDDEN = set('/\\. "$*<>:|?\x00')
_MAX_DATABASE_BYTES = 63


def validate_database(name: object) -> str:
    """``name`` when MongoDB accepts it as a database name; raises
    :class:`~queuert.errors.ConfigurationError` naming it otherwise."""
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"MongoDB database name must be a non-empty string: {name!r}")
    if any(char in _DATABASE_FORBIDDEN for char in name):
        raise ConfigurationError(
            f'MongoDB database name must not contain any of / \\ . space " $ * < > : | ?: '
            f"{name[:80]!r}"
        )
    if len(name.encode()) > _MAX_DATABASE_BYTES:
        raise ConfigurationError(
            f"MongoDB database name is longer than {_MAX_DATABASE_BYTES} bytes: {name[:80]!r}"
        )
    return name


def validate_prefix(prefix: object) -> str:
    """``prefix`` when it can start a collection name; raises
    :class:`~queuert.errors.ConfigurationError` naming it otherwise."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise ConfigurationError(
            "collection_prefix must start with a letter or underscore, hold only letters, "
            f"digits, '_', '.' and '-', and be at most 64 characters: {str(prefix)[:80]!r}"
        )
    if prefix.startswith("system."):
        raise ConfigurationError(f"collection_prefix must not start with 'system.': {prefix!r}")
    return prefix


@dataclass(frozen=True, slots=True)
class Collections:
    """The collection names of one prefix: jobs, the schema document, notify signals,
    and (schema version 2) the edges of blocked jobs, deduplication keys, worker
    records, schedule slots and the per-queue documents of concurrency limits."""

    jobs: str
    meta: str
    signals: str
    blockers: str
    dedup: str
    workers: str
    slots: str
    limits: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Collections:
        validate_prefix(prefix)
        return cls(
            jobs=f"{prefix}jobs",
            meta=f"{prefix}meta",
            signals=f"{prefix}signals",
            blockers=f"{prefix}job_blockers",
            dedup=f"{prefix}job_dedup",
            workers=f"{prefix}workers",
            slots=f"{prefix}schedule_slots",
            limits=f"{prefix}queue_limits",
        )

    def named(self, role: str) -> str:
        """The collection of ``role`` (an attribute name: ``"jobs"``, ``"blockers"``...)."""
        name = getattr(self, role)
        assert isinstance(name, str)
        return name
