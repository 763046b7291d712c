"""Acquiring a batch in two round trips: the candidates read, the conditional claim
and the records built from them (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import bson

from queuert_mongodb import acquisition, queries
from queuert_mongodb.documents import job_from_document
from tests.mongodb.test_documents import stored

NOW = datetime(2030, 1, 1, 12, 0, 0, 250000, tzinfo=UTC)
EARLIER = NOW - timedelta(seconds=5)


def candidate(job_id: str, **fields: Any) -> dict[str, Any]:
    return {**stored(job_id, scheduled_at=EARLIER, attempt=1, claim="old"), "_now": NOW, **fields}


def test_candidates_are_read_in_acquisition_order_with_the_server_now() -> None:
    query = queries.eligible_query(["q"])
    pipeline = acquisition.candidates_pipeline(query, queries.ACQUIRE_SORT, 5)
    assert pipeline == [
        {"$match": query},
        {"$sort": {"scheduled_at": 1, "priority": -1, "_id": 1}},
        {"$limit": 5},
        {"$set": {"_now": "$$NOW"}},
    ]
    assert list(pipeline[1]["$sort"]) == ["scheduled_at", "priority", "_id"]


def test_the_claim_matches_only_candidates_unchanged_since_the_read() -> None:
    first, second = candidate("j1"), candidate("j2", claim=None, attempt=0)
    query = acquisition.unchanged_query([first, second])
    assert query["status"] == "pending"
    assert query["$expr"] == {"$lte": ["$scheduled_at", "$$NOW"]}
    assert query["$or"] == [
        {
            "_id": "j1",
            "claim": "old",
            "attempt": 1,
            "scheduled_at": EARLIER,
            "updated_at": first["updated_at"],
        },
        {
            "_id": "j2",
            "claim": None,
            "attempt": 0,
            "scheduled_at": EARLIER,
            "updated_at": second["updated_at"],
        },
    ]
    bson.encode(query)


def test_the_record_returned_is_the_stored_document() -> None:
    found = candidate("j1")
    (stage,) = acquisition.claim_update(owner="$w", lease_ms=30_000, token="t", now=NOW)
    fields = stage["$set"]
    claimed = acquisition.claimed_document(found, owner="$w", lease_ms=30_000, token="t", now=NOW)
    # Every literal the update stores is what the returned record holds.
    for name, value in fields.items():
        if name != "attempt":
            assert value == {"$literal": claimed[name]}, name
    assert fields["attempt"] == {"$add": ["$attempt", 1]}
    assert claimed["attempt"] == found["attempt"] + 1
    assert "_now" not in claimed
    record = job_from_document(claimed)
    assert record.status.value == "running" and record.leased_by == "$w"
    assert record.leased_until == NOW + timedelta(seconds=30)
    assert record.updated_at == NOW and record.attempt == 2
    assert record.created_at == found["created_at"]


def test_the_server_now_of_several_reads_is_the_latest() -> None:
    later = NOW + timedelta(milliseconds=3)
    assert acquisition.server_now([candidate("a"), candidate("b", _now=later)]) == later
