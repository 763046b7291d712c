"""Acquisition under a concurrency limit, and schedule slots (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from queuert_mongodb import limits, queries, schedules

AT = datetime(2030, 2, 3, 4, 5, 0, tzinfo=UTC)


def job(job_id: str, key: str | None) -> dict[str, Any]:
    return {"_id": job_id, "concurrency_key": key}


def test_running_jobs_with_a_valid_lease_are_counted_by_key() -> None:
    keyed = limits.running_pipeline("q", per_key=True)
    assert keyed[0]["$match"] == {
        "status": "running",
        "queue": "q",
        "$expr": {"$gt": ["$leased_until", "$$NOW"]},
    }
    assert keyed[1]["$group"]["_id"] == {"$ifNull": ["$concurrency_key", None]}
    whole = limits.running_pipeline("q", per_key=False)
    assert whole[1]["$group"] == {"_id": None, "n": {"$sum": 1}}


def test_room_is_what_the_limit_leaves() -> None:
    room = limits.room_by_key([{"_id": "a", "n": 2}, {"_id": None, "n": 5}], 3)
    assert room == {"a": 1, None: 0}
    assert limits.full_keys(room) == [None]


def test_picking_skips_full_keys_and_tells_when_it_did() -> None:
    room: dict[str | None, int] = {"a": 1}
    found = [job("1", "a"), job("2", "a"), job("3", "b"), job("4", None), job("5", "b")]
    taken, passed_over = limits.pick_within_room(found, room, 1, 10)
    assert [doc["_id"] for doc in taken] == ["1", "3", "4"]
    assert passed_over
    assert room == {"a": 0, "b": 0, None: 0}


def test_picking_stops_at_the_limit() -> None:
    room: dict[str | None, int] = {}
    taken, passed_over = limits.pick_within_room([job("1", "a"), job("2", "b")], room, 2, 1)
    assert [doc["_id"] for doc in taken] == ["1"] and not passed_over


def test_the_next_round_leaves_out_full_keys_and_taken_jobs() -> None:
    base = queries.eligible_query(["q"])
    query = limits.keyed_candidates_query(base, ["a", None], ["1"])
    assert query["concurrency_key"] == {"$nin": ["a", None]}
    assert query["_id"] == {"$nin": ["1"]}
    assert query["status"] == "pending" and query["queue"] == {"$in": ["q"]}
    assert limits.keyed_candidates_query(base, [], []) == base


def test_acquirers_of_a_limited_queue_take_turns_on_one_document() -> None:
    assert limits.turn_filter("q") == {"_id": "q"}
    # An increment: always a real write, which a concurrent turn conflicts with.
    assert limits.TURN_UPDATE == {"$inc": {"turns": 1}}


def test_a_slot_is_its_own_unique_id_and_is_never_overwritten() -> None:
    assert schedules.slot_id("nightly", AT) == {"schedule": "nightly", "slot_time": AT}
    assert list(schedules.slot_id("nightly", AT)) == ["schedule", "slot_time"]
    update = schedules.slot_insert("nightly", AT, "c1")
    assert list(update) == ["$setOnInsert"]
    assert update["$setOnInsert"]["chain_id"] == "c1"
    slot = schedules.slot_from_document(
        {"schedule": "nightly", "slot_time": AT.replace(tzinfo=None), "chain_id": "c1"}
    )
    assert slot.slot_time == AT and slot.chain_id == "c1"
    assert schedules.LATEST_SORT == [("schedule", 1), ("slot_time", -1)]
