"""Documents of the control operations (revoke, resume, settle, purge), the worker
records, the counts and a job's place in its queue.

Times are the server's (``$$NOW``); values callers gave are ``$literal`` in
pipelines and plain operands in queries (see :mod:`queuert_mongodb.updates`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queuert.control_records import (
    QueueCount,
    QueueCounts,
    WorkerInfo,
    WorkerRecord,
)
from queuert.records import JobStatus, Lease
from queuert_mongodb.documents import Document, utc
from queuert_mongodb.updates import NOW, Pipeline, literal

OPEN = [JobStatus.PENDING.value, JobStatus.BLOCKED.value, JobStatus.RUNNING.value]
"""The statuses of a job that has not ended."""

_CLEAR_LEASE = {"leased_by": None, "leased_until": None}


def open_head_query(chain_id: str) -> dict[str, Any]:
    """The chain's last job while it has not ended."""
    return {"chain_id": chain_id, "next_job_id": None, "status": {"$in": OPEN}}


def head_query(chain_id: str) -> dict[str, Any]:
    """The chain's last job."""
    return {"chain_id": chain_id, "next_job_id": None}


def open_job_query(job_id: str) -> dict[str, Any]:
    return {"_id": job_id, "status": {"$in": OPEN}}


def revoke_update() -> Pipeline:
    """Cancel an open job, taking its lease if it runs."""
    return [
        {
            "$set": {
                "status": literal(JobStatus.CANCELLED.value),
                **_CLEAR_LEASE,
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]


def lease_taken(before: Document) -> Lease | None:
    """The lease a write took from the job as it was ``before`` it, if it ran."""
    if before.get("status") == JobStatus.RUNNING.value and before.get("leased_by") is not None:
        return Lease(
            job_id=before["_id"], owner=before["leased_by"], attempt=int(before["attempt"])
        )
    return None


def resumable_query(job_id: str) -> dict[str, Any]:
    """The job while it is ``failed`` or ``cancelled`` and ended its chain."""
    return {
        "_id": job_id,
        "status": {"$in": [JobStatus.FAILED.value, JobStatus.CANCELLED.value]},
        "next_job_id": None,
    }


def resume_update() -> Pipeline:
    """Back to ``pending``, due now, with a fresh attempt budget; the error stays."""
    return [
        {
            "$set": {
                "status": literal(JobStatus.PENDING.value),
                "attempt": literal(0),
                "scheduled_at": NOW,
                "completed_at": None,
                **_CLEAR_LEASE,
                "updated_at": NOW,
            }
        }
    ]


def settle_update(output: str | None, next_job_id: str | None) -> Pipeline:
    """Complete an open job from outside: with ``output`` it ends its chain, with
    ``next_job_id`` it continues it."""
    return [
        {
            "$set": {
                "status": literal(JobStatus.COMPLETED.value),
                "output": literal(output),
                "next_job_id": literal(next_job_id),
                **_CLEAR_LEASE,
                "completed_at": NOW,
                "updated_at": NOW,
            }
        }
    ]


def purgeable_query(ended_before: datetime, statuses: Sequence[JobStatus]) -> dict[str, Any]:
    """Last jobs of chains that ended before ``ended_before`` with one of ``statuses``."""
    return {
        "next_job_id": None,
        "completed_at": {"$type": "date", "$lt": ended_before},
        "status": {"$in": [JobStatus(status).value for status in statuses]},
    }


PURGE_SORT = [("next_job_id", 1), ("completed_at", 1)]


def worker_update(worker: WorkerInfo) -> Pipeline:
    """Upsert pipeline recording ``worker``: ``last_seen_at`` now, ``started_at`` kept
    from its first record."""
    return [
        {
            "$set": {
                "host": literal(worker.host),
                "pid": literal(worker.pid),
                "queues": literal(list(worker.queues)),
                "concurrency": literal(worker.concurrency),
                "purges": literal(worker.purges),
                "started_at": {"$ifNull": ["$started_at", NOW]},
                "last_seen_at": NOW,
            }
        }
    ]


def forgotten_query(worker_id: str, forget_ms: int) -> dict[str, Any]:
    """Records of other workers not seen for ``forget_ms`` by the server's clock."""
    return {
        "_id": {"$ne": worker_id},
        "$expr": {"$lt": ["$last_seen_at", {"$subtract": [NOW, forget_ms]}]},
    }


def worker_from_document(doc: Document) -> WorkerRecord:
    started_at, last_seen_at = utc(doc["started_at"]), utc(doc["last_seen_at"])
    assert started_at is not None and last_seen_at is not None
    return WorkerRecord(
        id=doc["_id"],
        host=doc["host"],
        pid=int(doc["pid"]),
        queues=tuple(doc["queues"]),
        concurrency=int(doc["concurrency"]),
        started_at=started_at,
        last_seen_at=last_seen_at,
        purges=bool(doc.get("purges", False)),
    )


def count_pipeline() -> Pipeline:
    """Aggregation yielding one document ``{now, counts: [{_id: {queue, status}, n,
    oldest}]}``, also when there are no jobs (``$facet`` always yields one)."""
    pending = {"$eq": ["$status", JobStatus.PENDING.value]}
    return [
        {
            "$facet": {
                "counts": [
                    {
                        "$group": {
                            "_id": {"queue": "$queue", "status": "$status"},
                            "n": {"$sum": 1},
                            "oldest": {"$min": {"$cond": [pending, "$scheduled_at", None]}},
                        }
                    },
                    {"$sort": {"_id.queue": 1, "_id.status": 1}},
                ]
            }
        },
        {"$set": {"now": NOW}},
    ]


def queue_counts(document: Document) -> QueueCounts:
    """The counts of :func:`count_pipeline`'s document."""
    now = utc(document["now"])
    assert now is not None
    return QueueCounts(
        now=now,
        counts=[
            QueueCount(
                queue=row["_id"]["queue"],
                status=JobStatus(row["_id"]["status"]),
                count=int(row["n"]),
                oldest_scheduled_at=utc(row.get("oldest")),
            )
            for row in document["counts"]
        ],
    )


def position_pipeline(job_id: str, jobs: str) -> Pipeline:
    """Aggregation over the jobs collection ``jobs`` yielding the job with ``_now`` (the
    server's) and ``_ahead``: for a ``pending`` job, the ``pending`` jobs of its queue
    due now that acquisition takes before it (earlier ``scheduled_at``, then higher
    priority, then smaller id)."""
    before = {
        "$or": [
            {"$lt": ["$scheduled_at", "$$at"]},
            {
                "$and": [
                    {"$eq": ["$scheduled_at", "$$at"]},
                    {
                        "$or": [
                            {"$gt": ["$priority", "$$priority"]},
                            {
                                "$and": [
                                    {"$eq": ["$priority", "$$priority"]},
                                    {"$lt": ["$_id", "$$id"]},
                                ]
                            },
                        ]
                    },
                ]
            },
        ]
    }
    return [
        {"$match": {"_id": job_id}},
        {
            "$lookup": {
                "from": jobs,
                "let": {
                    "queue": "$queue",
                    "at": "$scheduled_at",
                    "priority": "$priority",
                    "id": "$_id",
                    "status": "$status",
                },
                "pipeline": [
                    {
                        "$match": {
                            "status": JobStatus.PENDING.value,
                            "$expr": {
                                "$and": [
                                    {"$eq": ["$$status", JobStatus.PENDING.value]},
                                    {"$eq": ["$queue", "$$queue"]},
                                    {"$lte": ["$scheduled_at", NOW]},
                                    before,
                                ]
                            },
                        }
                    },
                    {"$count": "n"},
                ],
                "as": "_ahead",
            }
        },
        {"$set": {"_now": NOW, "_ahead": {"$ifNull": [{"$first": "$_ahead.n"}, 0]}}},
    ]
