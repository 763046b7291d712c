"""Signal documents and their change events (no server needed)."""

from __future__ import annotations

import bson

from queuert_mongodb.signals import (
    CHAIN_COMPLETED,
    SCHEDULED,
    WATCH_PIPELINE,
    Signal,
    signal_from_change,
    signal_update,
)


def test_signal_is_written_literally_with_the_server_time() -> None:
    (stage,) = signal_update(Signal(SCHEDULED, "$queue", 3))
    assert stage["$set"] == {
        "kind": {"$literal": SCHEDULED},
        "key": {"$literal": "$queue"},
        "count": {"$literal": 3},
        "at": "$$NOW",
    }
    bson.encode({"u": signal_update(Signal(SCHEDULED, "q", 1))})


def test_insert_event_carries_the_signal() -> None:
    change = {
        "operationType": "insert",
        "fullDocument": {"_id": 1, "kind": SCHEDULED, "key": "images", "count": 4},
    }
    assert signal_from_change(change) == Signal(SCHEDULED, "images", 4)
    chain = {"fullDocument": {"kind": CHAIN_COMPLETED, "key": "c1"}}
    assert signal_from_change(chain) == Signal(CHAIN_COMPLETED, "c1", 1)


def test_other_events_carry_nothing() -> None:
    assert signal_from_change({"operationType": "drop"}) is None
    assert signal_from_change({"fullDocument": {"kind": "other", "key": "k"}}) is None
    assert signal_from_change({"fullDocument": {"kind": SCHEDULED, "key": 5}}) is None
    odd = {"fullDocument": {"kind": SCHEDULED, "key": "q", "count": True}}
    assert signal_from_change(odd) == Signal(SCHEDULED, "q", 1)


def test_stream_reads_inserts_only_and_keeps_the_resume_token() -> None:
    assert WATCH_PIPELINE[0] == {"$match": {"operationType": "insert"}}
    projection = WATCH_PIPELINE[1]["$project"]
    assert "_id" not in projection  # the resume token must stay in every event
