"""Concurrency limits: the documents of acquisition under a queue's limit.

Race-freedom: an acquisition under a limit first writes the queue's document in
``{prefix}queue_limits`` inside its transaction, then counts the queue's running
jobs with a valid lease and leases only as many as the limit leaves room for.
Two acquisitions of one queue write the same document, so the second to write
conflicts and runs again in a new transaction, which sees the first one's jobs
running. Acquirers of one limited queue thus take turns; other queues and
unlimited acquisitions are not held up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from queuert.records import JobStatus
from queuert_mongodb.documents import Document
from queuert_mongodb.updates import NOW

TURN_UPDATE: dict[str, Any] = {"$inc": {"turns": 1}}
"""The write to a queue's document that makes concurrent limited acquisitions of the
queue conflict (upserted on first use)."""


def turn_filter(queue: str) -> dict[str, Any]:
    return {"_id": queue}


def running_pipeline(queue: str, per_key: bool) -> list[dict[str, Any]]:
    """Aggregation counting the queue's ``running`` jobs whose lease is valid by the
    server's clock: one document ``{_id: key, n}`` per concurrency key (``None`` for
    jobs without one), or a single ``{_id: None, n}`` without ``per_key``."""
    return [
        {
            "$match": {
                "status": JobStatus.RUNNING.value,
                "queue": queue,
                "$expr": {"$gt": ["$leased_until", NOW]},
            }
        },
        {
            "$group": {
                "_id": {"$ifNull": ["$concurrency_key", None]} if per_key else None,
                "n": {"$sum": 1},
            }
        },
    ]


def room_by_key(counts: Sequence[Document], concurrency_limit: int) -> dict[str | None, int]:
    """How many more jobs each key of ``counts`` (from :func:`running_pipeline`) may
    run; a key not listed may run ``concurrency_limit``."""
    return {row["_id"]: max(0, concurrency_limit - int(row["n"])) for row in counts}


def full_keys(room: Mapping[str | None, int]) -> list[str | None]:
    return [key for key, left in room.items() if left <= 0]


def keyed_candidates_query(
    base: Mapping[str, Any], full: Sequence[str | None], taken: Sequence[str]
) -> dict[str, Any]:
    """``base`` (the queue's eligible jobs) without jobs of the ``full`` keys (``None``:
    jobs without a key) and without the jobs already ``taken``."""
    query = dict(base)
    if full:
        query["concurrency_key"] = {"$nin": list(full)}
    if taken:
        query["_id"] = {"$nin": list(taken)}
    return query


def pick_within_room(
    candidates: Sequence[dict[str, Any]],
    room: dict[str | None, int],
    concurrency_limit: int,
    limit: int,
) -> tuple[list[dict[str, Any]], bool]:
    """Take candidates in order while their key has room (updating ``room``), up to
    ``limit``; return them and whether a candidate was passed over because its key
    filled up (then the next candidates may hold other keys' jobs)."""
    taken: list[dict[str, Any]] = []
    passed_over = False
    for doc in candidates:
        if len(taken) >= limit:
            break
        key = doc.get("concurrency_key")
        left = room.get(key, concurrency_limit)
        if left <= 0:
            passed_over = True
            continue
        room[key] = left - 1
        taken.append(doc)
    return taken, passed_over
