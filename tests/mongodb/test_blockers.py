"""Blocked jobs: edge documents, the fields of a waiting job and the plan of what a
chain's end does to the jobs waiting on it (no server needed)."""

from __future__ import annotations

from typing import Any

import bson

from queuert.blockers import blocker_error
from queuert.records import JobError, JobStatus
from queuert_mongodb import blockers
from queuert_mongodb.documents import error_document


def edge(job_id: str, chain_id: str) -> dict[str, Any]:
    return {"job_id": job_id, "blocker_chain_id": chain_id}


def waiting(job_id: str, *, runs_however: bool = False, dependents: bool = False) -> dict[str, Any]:
    return {
        "_id": job_id,
        "chain_id": f"chain-of-{job_id}",
        "run_on_blocker_failure": runs_however,
        "dependents": dependents,
    }


def test_edges_name_each_job_each_blocker_in_order() -> None:
    edges = blockers.edge_documents([("j1", "c1"), ("j2", "c2")], ["a", "b", "a"])
    assert [(e["job_id"], e["chain_id"], e["position"], e["blocker_chain_id"]) for e in edges] == [
        ("j1", "c1", 0, "a"),
        ("j1", "c1", 1, "b"),
        ("j1", "c1", 2, "a"),
        ("j2", "c2", 0, "a"),
        ("j2", "c2", 1, "b"),
        ("j2", "c2", 2, "a"),
    ]


def test_a_waiting_job_stores_what_initial_wait_decided() -> None:
    fields = blockers.waiting_fields(JobStatus.BLOCKED, 2, None, False)
    assert fields == {
        "status": {"$literal": "blocked"},
        "blockers_left": {"$literal": 2},
        "run_on_blocker_failure": {"$literal": False},
        "error": {"$literal": None},
        "completed_at": None,
    }
    error = JobError(type="t", message="$attempt")
    failed = blockers.waiting_fields(JobStatus.FAILED, 0, error, True)
    assert failed["status"] == {"$literal": "failed"}
    assert failed["error"] == {"$literal": error_document(error)}
    assert failed["completed_at"] == "$$NOW"


def test_making_a_job_wait_writes_to_the_blocker_chains_last_job() -> None:
    # A real change ($inc), so that a concurrent end of the chain conflicts with it.
    assert blockers.MARK_DEPENDED == {"$set": {"dependents": True}, "$inc": {"lock": 1}}
    assert blockers.heads_query(["a", "b"]) == {
        "chain_id": {"$in": ["a", "b"]},
        "next_job_id": None,
    }


def test_only_the_end_of_a_chain_with_waiting_jobs_is_followed() -> None:
    head = {"_id": "j", "chain_id": "c", "next_job_id": None, "dependents": True}
    assert blockers.ended_chain({**head, "status": "completed"}) == ("c", "completed")
    assert blockers.ended_chain({**head, "status": "cancelled"}) == ("c", "cancelled")
    assert blockers.ended_chain({**head, "status": "failed"}) == ("c", "failed")
    assert blockers.ended_chain({**head, "status": "running"}) is None
    assert blockers.ended_chain({**head, "status": "completed", "next_job_id": "n"}) is None
    assert blockers.ended_chain({**head, "status": "completed", "dependents": False}) is None
    del head["dependents"]
    assert blockers.ended_chain({**head, "status": "completed"}) is None


def test_a_continuation_takes_over_the_flag() -> None:
    assert blockers.inherited({"_id": "j", "dependents": True}) == {
        "dependents": {"$literal": True}
    }
    assert blockers.inherited({"_id": "j"}) == {}


def test_a_completed_chain_counts_each_waiting_job_down_once() -> None:
    plan = blockers.plan_unblocking(
        {"a": "completed"},
        [edge("j1", "a"), edge("j1", "a"), edge("j2", "a"), edge("j3", "b")],
        [waiting("j1"), waiting("j2"), waiting("j3")],
    )
    assert plan.decrements == {1: ["j1", "j2"]}
    assert plan.failures == {} and plan.ended == {}


def test_chains_ending_together_count_down_together() -> None:
    plan = blockers.plan_unblocking(
        {"a": "completed", "b": "completed"},
        [edge("j1", "a"), edge("j1", "b"), edge("j2", "b")],
        [waiting("j1"), waiting("j2")],
    )
    assert plan.decrements == {2: ["j1"], 1: ["j2"]}


def test_jobs_no_longer_waiting_are_left_alone() -> None:
    plan = blockers.plan_unblocking({"a": "completed"}, [edge("j1", "a")], [])
    assert plan == blockers.UnblockPlan()


def test_a_failed_blocker_fails_the_job_naming_it_and_follows_its_chain() -> None:
    plan = blockers.plan_unblocking(
        {"a": "completed", "b": "cancelled", "c": "failed"},
        [edge("j1", "a"), edge("j1", "c"), edge("j1", "b"), edge("j2", "c")],
        [waiting("j1", dependents=True), waiting("j2")],
    )
    # The first chain that ended badly, in the order the chains ended, is named.
    assert plan.failures == {("b", "cancelled"): ["j1"], ("c", "failed"): ["j2"]}
    assert plan.decrements == {}
    # Only a failed job's chain with waiting jobs of its own is followed further.
    assert plan.ended == {"chain-of-j1": "failed"}


def test_a_job_that_runs_however_counts_a_failed_blocker_as_ended() -> None:
    plan = blockers.plan_unblocking(
        {"a": "failed", "b": "completed"},
        [edge("j1", "a"), edge("j1", "b")],
        [waiting("j1", runs_however=True)],
    )
    assert plan.decrements == {2: ["j1"]} and plan.failures == {}


def test_counting_down_unblocks_at_zero_only() -> None:
    (stage,) = blockers.decrement_update(2)
    fields = stage["$set"]
    assert fields["status"] == {
        "$cond": [
            {"$lte": ["$blockers_left", 2]},
            {"$literal": "pending"},
            {"$literal": "blocked"},
        ]
    }
    assert fields["blockers_left"] == {"$max": [0, {"$subtract": ["$blockers_left", 2]}]}
    assert fields["updated_at"] == "$$NOW"


def test_a_blocker_failure_records_the_same_error_as_the_other_adapters() -> None:
    (stage,) = blockers.failure_update("$chain", "cancelled")
    fields = stage["$set"]
    assert fields["status"] == {"$literal": "failed"}
    assert fields["error"] == {"$literal": error_document(blocker_error("$chain", "cancelled"))}
    assert fields["completed_at"] == fields["updated_at"] == "$$NOW"
    bson.encode({"u": [stage]})


def test_waiting_jobs_are_matched_by_status() -> None:
    assert blockers.waiting_query(["j1"]) == {"_id": {"$in": ["j1"]}, "status": "blocked"}
    assert blockers.edges_of_query(["a"]) == {"blocker_chain_id": {"$in": ["a"]}}
    assert blockers.edges_of_chains_query(["c"]) == {"chain_id": {"$in": ["c"]}}


def test_dependent_chains_are_other_chains_in_id_order() -> None:
    query = blockers.dependents_query(["a", "b"])
    assert query == {"blocker_chain_id": {"$in": ["a", "b"]}, "chain_id": {"$nin": ["a", "b"]}}
    edges = [{"chain_id": "z"}, {"chain_id": "m"}, {"chain_id": "z"}]
    assert blockers.dependent_chain_ids(edges) == ["m", "z"]
