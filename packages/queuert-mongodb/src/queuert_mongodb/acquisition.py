"""The documents of acquiring a batch in two round trips.

The first round trip reads the candidates in acquisition order together with the
server's now (an aggregation adding ``$$NOW``). The second claims them with one
``update_many`` whose filter matches each candidate only while it is unchanged
since that read (same ``claim`` token, attempt, ``scheduled_at`` and
``updated_at``: any write to a job since then changes one of them) and still
``pending`` and due, and which stores the lease as of the time read. When every
candidate was claimed, the jobs as stored are the candidates with that update
applied (:func:`claimed_document`), so nothing is read back; when a concurrent
acquisition won some first, the caller reads back what carries its token.

Leases are thus timed from the server's clock read one round trip earlier: they
end that much sooner than ``lease_ms`` after the write, never later, and the
record returned is exactly what was stored.

Alternatives weighed: a loop of ``find_one_and_update`` takes one round trip per
job; an aggregation ending in ``$merge`` into the jobs collection claims in one
but cannot run in a transaction (a caller's ``tx``, limited acquisition) and
returns nothing, so it still needs a read back (two round trips, and an index
on the token).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from queuert.records import JobStatus
from queuert_mongodb.documents import Document
from queuert_mongodb.updates import NOW, Pipeline, literal

NOW_FIELD = "_now"
"""Field the candidates pipeline adds: the server's now at the read."""

UNCHANGED_FIELDS = ("claim", "attempt", "scheduled_at", "updated_at")


def candidates_pipeline(
    query: dict[str, Any], sort: Sequence[tuple[str, int]], limit: int
) -> Pipeline:
    """Up to ``limit`` jobs of ``query`` in ``sort`` order, each with the server's now."""
    return [
        {"$match": query},
        {"$sort": dict(sort)},
        {"$limit": limit},
        {"$set": {NOW_FIELD: NOW}},
    ]


def server_now(candidates: Sequence[Document]) -> datetime:
    """The server's now read with the candidates (the latest, when several reads)."""
    now: datetime = max(doc[NOW_FIELD] for doc in candidates)
    return now


def unchanged_query(candidates: Sequence[Document]) -> dict[str, Any]:
    """The candidates that are still ``pending``, due by the server's clock and
    unchanged since they were read."""
    return {
        "status": JobStatus.PENDING.value,
        "$expr": {"$lte": ["$scheduled_at", NOW]},
        "$or": [
            {"_id": doc["_id"], **{name: doc.get(name) for name in UNCHANGED_FIELDS}}
            for doc in candidates
        ],
    }


def _leased_fields(owner: str, lease_ms: int, token: str, now: datetime) -> dict[str, Any]:
    return {
        "status": JobStatus.RUNNING.value,
        "leased_by": owner,
        "leased_until": now + timedelta(milliseconds=lease_ms),
        "updated_at": now,
        "claim": token,
    }


def claim_update(*, owner: str, lease_ms: int, token: str, now: datetime) -> Pipeline:
    """Lease the jobs to ``owner`` as of ``now`` (the server's time read with them)."""
    fields = {
        name: literal(value) for name, value in _leased_fields(owner, lease_ms, token, now).items()
    }
    return [{"$set": {**fields, "attempt": {"$add": ["$attempt", 1]}}}]


def claimed_document(
    candidate: Document, *, owner: str, lease_ms: int, token: str, now: datetime
) -> dict[str, Any]:
    """The job as stored after :func:`claim_update` changed ``candidate``."""
    document = {key: value for key, value in candidate.items() if key != NOW_FIELD}
    document.update(_leased_fields(owner, lease_ms, token, now))
    document["attempt"] = int(candidate["attempt"]) + 1
    return document
