"""Deduplication keys (no server needed)."""

from __future__ import annotations

from queuert.records import DedupKey, DedupScope
from queuert_mongodb import dedup


def test_a_key_is_scoped_by_chain_name() -> None:
    assert dedup.key_id("images", "k") == {"chain_name": "images", "key": "k"}
    assert dedup.key_id("images", "k") != dedup.key_id("videos", "k")
    assert list(dedup.key_id("a", "b")) == ["chain_name", "key"]


def test_taking_a_free_key_keeps_an_existing_holder() -> None:
    (stage,) = dedup.take_if_free("$c1")
    assert stage["$set"]["chain_id"] == {"$ifNull": ["$chain_id", {"$literal": "$c1"}]}
    assert stage["$set"]["taken_at"] == {"$ifNull": ["$taken_at", "$$NOW"]}
    (over,) = dedup.take_over("c2")
    assert over["$set"] == {"chain_id": {"$literal": "c2"}, "taken_at": "$$NOW"}


def test_an_incomplete_scoped_key_is_kept_while_the_chain_has_not_ended() -> None:
    query = dedup.holder_head_query("c1", DedupKey("k"))
    assert query == {
        "chain_id": "c1",
        "next_job_id": None,
        "status": {"$nin": ["completed", "failed", "cancelled"]},
    }


def test_an_any_scoped_key_is_kept_while_the_chain_exists_and_within_its_window() -> None:
    forever = DedupKey("k", DedupScope.ANY)
    assert dedup.holder_head_query("c1", forever) == {"chain_id": "c1", "next_job_id": None}
    assert not dedup.needs_window_check(forever)
    assert not dedup.needs_window_check(DedupKey("k", DedupScope.INCOMPLETE, 500))
    windowed = DedupKey("k", DedupScope.ANY, 60_000)
    assert dedup.needs_window_check(windowed)
    assert dedup.within_window_query("images", "k", 60_000) == {
        "_id": {"chain_name": "images", "key": "k"},
        "$expr": {"$gt": ["$taken_at", {"$subtract": ["$$NOW", 60_000]}]},
    }


def test_the_key_is_stored_on_the_chains_first_job() -> None:
    assert dedup.dedup_fields("$k") == {"dedup_key": {"$literal": "$k"}}
    assert dedup.holder_of(None) is None
    assert dedup.holder_of({"chain_id": "c1"}) == "c1"
