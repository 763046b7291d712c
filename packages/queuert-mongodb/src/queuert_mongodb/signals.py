"""The documents that carry notify signals, and reading them back from a change stream.

A signal is one small document ``{kind, key, count, at}`` inserted into the
signals collection; every adapter watching the collection's change stream
receives the insert. ``at`` is the server's time of the insert, which a TTL
index uses to delete old signals.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEDULED = "job_scheduled"
CHAIN_COMPLETED = "chain_completed"
LEASE_LOST = "lease_lost"
KINDS = (SCHEDULED, CHAIN_COMPLETED, LEASE_LOST)

SIGNAL_TTL_S = 300
"""Signals are deleted by MongoDB's TTL monitor (which runs once a minute) after this
many seconds; listeners receive them from the change stream long before."""

TTL_INDEX_NAME = "queuert_signal_ttl"

WATCH_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"operationType": "insert"}},
    {"$project": {"fullDocument.kind": 1, "fullDocument.key": 1, "fullDocument.count": 1}},
]
"""Change stream stages: inserted signals only, and only the fields a listener needs."""


@dataclass(frozen=True, slots=True)
class Signal:
    kind: str
    key: str
    count: int = 1


def signal_update(signal: Signal) -> list[dict[str, Any]]:
    """The upsert pipeline writing ``signal`` (the filter is a new ``_id``) with the
    server's time in ``at``."""
    return [
        {
            "$set": {
                "kind": {"$literal": signal.kind},
                "key": {"$literal": signal.key},
                "count": {"$literal": signal.count},
                "at": "$$NOW",
            }
        }
    ]


def signal_from_change(change: Mapping[str, Any]) -> Signal | None:
    """The signal an insert event carries, or ``None`` for anything else."""
    document = change.get("fullDocument")
    if not isinstance(document, Mapping):
        return None
    kind, key, count = document.get("kind"), document.get("key"), document.get("count", 1)
    if kind not in KINDS or not isinstance(key, str):
        return None
    if isinstance(count, bool) or not isinstance(count, int):
        count = 1
    return Signal(kind=kind, key=key, count=count)
