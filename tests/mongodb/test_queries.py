"""Filters, sort orders and read pipelines (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import bson

from queuert.records import ChainFilter, JobFilter, JobStatus, Lease
from queuert_mongodb import queries
from queuert_mongodb.migrations import MIGRATIONS

AFTER = datetime(2030, 1, 1, tzinfo=UTC)
BEFORE = datetime(2030, 2, 1, tzinfo=UTC)


def test_lease_guard_matches_owner_attempt_and_running_status() -> None:
    guard = queries.lease_guard(Lease(job_id="j1", owner="w1", attempt=3))
    assert guard == {"_id": "j1", "status": "running", "leased_by": "w1", "attempt": 3}


def test_eligibility_compares_with_the_server_clock() -> None:
    query = queries.eligible_query(["a", "b"])
    assert query["status"] == "pending"
    assert query["queue"] == {"$in": ["a", "b"]}
    assert query["$expr"] == {"$lte": ["$scheduled_at", "$$NOW"]}


def test_expiry_compares_with_the_server_clock() -> None:
    assert queries.expired_query() == {
        "status": "running",
        "$expr": {"$lt": ["$leased_until", "$$NOW"]},
    }
    assert queries.still_expired_query(["j"])["_id"] == {"$in": ["j"]}


def test_a_batch_reads_back_only_what_its_token_claimed() -> None:
    assert queries.claimed_query(["j1"], "t") == {"_id": {"$in": ["j1"]}, "claim": "t"}


def test_acquire_order_is_the_acquire_index_order() -> None:
    # The candidates' sort must walk the acquisition index after its queue key.
    migration = MIGRATIONS[0]
    index = next(spec for spec in migration.job_indexes if spec.name == "queuert_acquire")
    assert list(index.keys[1:]) == queries.ACQUIRE_SORT
    reap = next(spec for spec in migration.job_indexes if spec.name == "queuert_reap")
    assert list(reap.keys) == queries.REAP_SORT


def test_job_listing_filters_and_keyset_cursor() -> None:
    assert queries.job_list_query(JobFilter(), None) == {}
    query = queries.job_list_query(
        JobFilter(statuses=(JobStatus.FAILED, JobStatus.CANCELLED), chain_id="c", queues=("q",)),
        "j9",
    )
    assert query == {
        "_id": {"$gt": "j9"},
        "status": {"$in": ["failed", "cancelled"]},
        "chain_id": "c",
        "queue": {"$in": ["q"]},
    }


def test_chain_listing_reads_chain_heads_after_the_cursor() -> None:
    assert queries.chain_head_query(ChainFilter(), None) == {"next_job_id": None}
    query = queries.chain_head_query(
        ChainFilter(statuses=(JobStatus.COMPLETED,), chain_names=("images",)), "c5"
    )
    assert query == {
        "next_job_id": None,
        "chain_id": {"$gt": "c5"},
        "status": {"$in": ["completed"]},
        "chain_name": {"$in": ["images"]},
    }


def test_chain_lookup_finds_first_and_last_job() -> None:
    assert queries.chain_query("c1") == {
        "chain_id": "c1",
        "$or": [{"_id": "c1"}, {"next_job_id": None}],
    }


def test_only_a_pending_or_blocked_last_job_is_cancelled() -> None:
    assert queries.cancellable_query("c1") == {
        "chain_id": "c1",
        "next_job_id": None,
        "status": {"$in": ["pending", "blocked"]},
    }


def test_next_due_pipeline_measures_from_the_server_clock() -> None:
    pipeline = queries.next_due_pipeline(["a"])
    assert pipeline[0] == {"$match": {"status": "pending", "queue": {"$in": ["a"]}}}
    assert pipeline[1:3] == [{"$sort": {"scheduled_at": 1}}, {"$limit": 1}]
    assert pipeline[3]["$project"]["wait_ms"] == {"$subtract": ["$scheduled_at", "$$NOW"]}


def test_caller_strings_stay_operands() -> None:
    # A queue or id that looks like an operator or a field path is compared as a value.
    sneaky = "$where"
    query = queries.job_list_query(JobFilter(chain_id=sneaky, queues=(sneaky,)), sneaky)
    assert query["chain_id"] == sneaky and query["queue"] == {"$in": [sneaky]}
    assert query["_id"] == {"$gt": sneaky}
    assert "$where" not in query
    bson.encode(query)


def test_newest_first_listings_page_backwards() -> None:
    newest = JobFilter(newest_first=True)
    assert queries.job_list_query(newest, "j9") == {"_id": {"$lt": "j9"}}
    assert queries.id_sort(True) == [("_id", -1)]
    assert queries.id_sort(False) == [("_id", 1)]
    heads = queries.chain_head_query(ChainFilter(newest_first=True), "c5")
    assert heads == {"next_job_id": None, "chain_id": {"$lt": "c5"}}


def test_jobs_within_a_creation_window_bounds_exclusive() -> None:
    query = queries.job_list_query(JobFilter(created_after=AFTER, created_before=BEFORE), None)
    assert query == {"created_at": {"$gt": AFTER, "$lt": BEFORE}}
    assert queries.job_list_query(JobFilter(created_before=BEFORE), None) == {
        "created_at": {"$lt": BEFORE}
    }


def test_chains_without_a_window_join_first_jobs_of_the_page_only() -> None:
    pipeline = queries.chain_list_pipeline(
        ChainFilter(statuses=(JobStatus.FAILED,), newest_first=True), "c9", 20, "qt_jobs"
    )
    assert pipeline[0] == {
        "$match": {"next_job_id": None, "chain_id": {"$lt": "c9"}, "status": {"$in": ["failed"]}}
    }
    assert pipeline[1] == {"$sort": {"chain_id": -1}}
    assert pipeline[2] == {"$limit": 20}
    assert pipeline[3]["$lookup"] == {
        "from": "qt_jobs",
        "localField": "chain_id",
        "foreignField": "_id",
        "as": "first",
    }
    assert pipeline[4] == {"$unwind": "$first"}


def test_a_creation_window_filters_on_the_first_job_before_the_limit() -> None:
    pipeline = queries.chain_list_pipeline(ChainFilter(created_after=AFTER), None, 5, "qt_jobs")
    stages = [next(iter(stage)) for stage in pipeline]
    assert stages == ["$match", "$sort", "$lookup", "$unwind", "$match", "$limit"]
    assert pipeline[4] == {"$match": {"first.created_at": {"$gt": AFTER}}}
    assert pipeline[5] == {"$limit": 5}


def test_chains_by_key_start_from_the_first_jobs_holding_it() -> None:
    pipeline = queries.chain_list_pipeline(
        ChainFilter(dedup_key="$k", statuses=(JobStatus.PENDING,), created_before=BEFORE),
        "c1",
        10,
        "qt_jobs",
    )
    assert pipeline[0] == {
        "$match": {"dedup_key": "$k", "_id": {"$gt": "c1"}, "created_at": {"$lt": BEFORE}}
    }
    assert pipeline[1] == {"$sort": {"_id": 1}}
    assert pipeline[2]["$lookup"]["foreignField"] == "chain_id"
    assert {"$match": {"_members.next_job_id": None}} in pipeline
    assert pipeline[-2] == {"$match": {"next_job_id": None, "status": {"$in": ["pending"]}}}
    assert pipeline[-1] == {"$limit": 10}
    bson.encode({"p": pipeline})
