"""Documents of the control operations, worker records, counts and queue positions
(no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import bson

from queuert.control_records import QueueCount, WorkerInfo
from queuert.records import JobStatus, Lease
from queuert_mongodb import control

AT = datetime(2030, 2, 3, 4, 5, 6, 7000, tzinfo=UTC)
SNEAKY = "$output"


def fields(pipeline: list[dict[str, object]]) -> dict[str, object]:
    (stage,) = pipeline
    result = stage["$set"]
    assert isinstance(result, dict)
    return result


def test_revoke_cancels_an_open_last_job_and_takes_its_lease() -> None:
    assert control.open_head_query("c") == {
        "chain_id": "c",
        "next_job_id": None,
        "status": {"$in": ["pending", "blocked", "running"]},
    }
    revoked = fields(control.revoke_update())
    assert revoked["status"] == {"$literal": "cancelled"}
    assert revoked["leased_by"] is None and revoked["leased_until"] is None
    assert revoked["completed_at"] == revoked["updated_at"] == "$$NOW"


def test_the_lease_taken_is_that_of_a_running_job_only() -> None:
    running = {"_id": "j", "status": "running", "leased_by": "w", "attempt": 2}
    assert control.lease_taken(running) == Lease(job_id="j", owner="w", attempt=2)
    assert control.lease_taken({**running, "status": "pending"}) is None
    assert control.lease_taken({**running, "leased_by": None}) is None


def test_resume_takes_a_failed_or_cancelled_chain_end_back_to_pending() -> None:
    assert control.resumable_query("j") == {
        "_id": "j",
        "status": {"$in": ["failed", "cancelled"]},
        "next_job_id": None,
    }
    resumed = fields(control.resume_update())
    assert resumed["status"] == {"$literal": "pending"}
    assert resumed["attempt"] == {"$literal": 0}
    assert resumed["scheduled_at"] == resumed["updated_at"] == "$$NOW"
    assert resumed["completed_at"] is None
    assert "error" not in resumed  # the last error stays recorded


def test_settle_completes_with_output_or_a_continuation() -> None:
    ended = fields(control.settle_update(SNEAKY, None))
    assert ended["status"] == {"$literal": "completed"}
    assert ended["output"] == {"$literal": SNEAKY}
    assert ended["next_job_id"] == {"$literal": None}
    continued = fields(control.settle_update(None, "$next"))
    assert continued["next_job_id"] == {"$literal": "$next"}
    assert continued["output"] == {"$literal": None}
    assert continued["leased_by"] is None and continued["completed_at"] == "$$NOW"
    assert control.open_job_query("j") == {"_id": "j", "status": {"$in": control.OPEN}}


def test_purge_takes_chain_ends_before_the_time_with_the_statuses() -> None:
    query = control.purgeable_query(AT, [JobStatus.COMPLETED, JobStatus.CANCELLED])
    assert query == {
        "next_job_id": None,
        "completed_at": {"$type": "date", "$lt": AT},
        "status": {"$in": ["completed", "cancelled"]},
    }
    # The sort walks the purge index (equality on next_job_id, then the end time).
    assert control.PURGE_SORT == [("next_job_id", 1), ("completed_at", 1)]


def test_a_worker_record_keeps_its_first_start() -> None:
    worker = WorkerInfo(id="w1", host="$h", pid=7, queues=("a", "$b"), concurrency=4, purges=True)
    recorded = fields(control.worker_update(worker))
    assert recorded["host"] == {"$literal": "$h"}
    assert recorded["queues"] == {"$literal": ["a", "$b"]}
    assert recorded["purges"] == {"$literal": True}
    assert recorded["started_at"] == {"$ifNull": ["$started_at", "$$NOW"]}
    assert recorded["last_seen_at"] == "$$NOW"
    assert control.forgotten_query("w1", 5000) == {
        "_id": {"$ne": "w1"},
        "$expr": {"$lt": ["$last_seen_at", {"$subtract": ["$$NOW", 5000]}]},
    }


def test_worker_documents_become_records() -> None:
    record = control.worker_from_document(
        {
            "_id": "w1",
            "host": "h",
            "pid": 7,
            "queues": ["a"],
            "concurrency": 2,
            "purges": False,
            "started_at": AT.replace(tzinfo=None),
            "last_seen_at": AT,
        }
    )
    assert record.queues == ("a",) and record.started_at == AT and record.last_seen_at == AT
    assert not record.purges


def test_counts_always_yield_one_document_with_the_server_now() -> None:
    pipeline = control.count_pipeline()
    assert "$facet" in pipeline[0] and pipeline[-1] == {"$set": {"now": "$$NOW"}}
    counts = control.queue_counts(
        {
            "now": AT,
            "counts": [
                {"_id": {"queue": "a", "status": "pending"}, "n": 3, "oldest": AT},
                {"_id": {"queue": "a", "status": "running"}, "n": 1, "oldest": None},
            ],
        }
    )
    assert counts.now == AT
    assert counts.counts == [
        QueueCount("a", JobStatus.PENDING, 3, AT),
        QueueCount("a", JobStatus.RUNNING, 1, None),
    ]
    assert control.queue_counts({"now": AT, "counts": []}).counts == []


def test_queue_position_counts_due_pending_jobs_taken_first() -> None:
    pipeline = control.position_pipeline("j1", "queuert_jobs")
    assert pipeline[0] == {"$match": {"_id": "j1"}}
    lookup = pipeline[1]["$lookup"]
    assert lookup["from"] == "queuert_jobs"
    match = lookup["pipeline"][0]["$match"]
    assert match["status"] == "pending"
    conditions = match["$expr"]["$and"]
    assert {"$eq": ["$$status", "pending"]} in conditions
    assert {"$lte": ["$scheduled_at", "$$NOW"]} in conditions
    order = conditions[-1]["$or"]
    assert order[0] == {"$lt": ["$scheduled_at", "$$at"]}
    assert pipeline[-1]["$set"]["_now"] == "$$NOW"
    bson.encode({"p": pipeline})
