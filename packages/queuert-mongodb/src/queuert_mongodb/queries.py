"""Query documents: filters, sort orders and aggregation pipelines that read jobs.

Values given by callers appear only as query operands (``$eq``, ``$in``, ``$gt``),
which MongoDB never evaluates as expressions. Comparisons with the current time
use the server's ``$$NOW`` inside ``$expr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queuert.records import ChainFilter, JobFilter, JobStatus, Lease

Query = dict[str, Any]
Pipeline = list[dict[str, Any]]
Sort = list[tuple[str, int]]

ACQUIRE_SORT: Sort = [("scheduled_at", 1), ("priority", -1), ("_id", 1)]
"""The order jobs are acquired in: oldest ``scheduled_at``, then higher priority, then id."""

REAP_SORT: Sort = [("leased_until", 1), ("_id", 1)]

_DUE = {"$lte": ["$scheduled_at", "$$NOW"]}
_EXPIRED = {"$lt": ["$leased_until", "$$NOW"]}


def lease_guard(lease: Lease) -> Query:
    """Matches the job only while it is ``running`` under ``lease``."""
    return {
        "_id": lease.job_id,
        "status": JobStatus.RUNNING.value,
        "leased_by": lease.owner,
        "attempt": lease.attempt,
    }


def eligible_query(queues: Sequence[str]) -> Query:
    """``pending`` jobs of ``queues`` due by the server's clock."""
    return {"status": JobStatus.PENDING.value, "queue": {"$in": list(queues)}, "$expr": _DUE}


def expired_query() -> Query:
    """``running`` jobs whose lease expired by the server's clock."""
    return {"status": JobStatus.RUNNING.value, "$expr": _EXPIRED}


def still_expired_query(ids: Sequence[str]) -> Query:
    return {"_id": {"$in": list(ids)}, "status": JobStatus.RUNNING.value, "$expr": _EXPIRED}


def claimed_query(ids: Sequence[str], token: str) -> Query:
    """Those of ``ids`` that the batch operation carrying ``token`` changed."""
    return {"_id": {"$in": list(ids)}, "claim": token}


def _created_window(after: Any, before: Any) -> dict[str, Any] | None:
    bounds: dict[str, Any] = {}
    if after is not None:
        bounds["$gt"] = after
    if before is not None:
        bounds["$lt"] = before
    return bounds or None


def id_sort(newest_first: bool, field: str = "_id") -> Sort:
    """Listing order: ascending ids, or descending for ``newest_first``."""
    return [(field, -1 if newest_first else 1)]


def _cursor(after: str | None, newest_first: bool) -> dict[str, Any] | None:
    if after is None:
        return None
    return {"$lt" if newest_first else "$gt": after}


def job_list_query(filter: JobFilter, after: str | None) -> Query:
    """Jobs matching ``filter`` after the cursor ``after`` (a greater id, or a smaller
    one for ``newest_first``)."""
    query: Query = {}
    cursor = _cursor(after, filter.newest_first)
    if cursor is not None:
        query["_id"] = cursor
    if filter.statuses is not None:
        query["status"] = {"$in": [JobStatus(status).value for status in filter.statuses]}
    if filter.chain_id is not None:
        query["chain_id"] = filter.chain_id
    if filter.queues is not None:
        query["queue"] = {"$in": list(filter.queues)}
    window = _created_window(filter.created_after, filter.created_before)
    if window is not None:
        query["created_at"] = window
    return query


def chain_head_query(filter: ChainFilter, after: str | None) -> Query:
    """The last jobs of chains matching ``filter``'s statuses and names after the
    cursor ``after`` (a chain's status is its last job's)."""
    query: Query = {"next_job_id": None}
    cursor = _cursor(after, filter.newest_first)
    if cursor is not None:
        query["chain_id"] = cursor
    if filter.statuses is not None:
        query["status"] = {"$in": [JobStatus(status).value for status in filter.statuses]}
    if filter.chain_names is not None:
        query["chain_name"] = {"$in": list(filter.chain_names)}
    if filter.queues is not None:
        query["queue"] = {"$in": list(filter.queues)}
    return query


def chain_list_pipeline(filter: ChainFilter, after: str | None, limit: int, jobs: str) -> Pipeline:
    """Aggregation over the jobs collection ``jobs`` yielding up to ``limit`` last jobs
    of the chains matching ``filter`` after the cursor ``after``, in listing order,
    each with its chain's first job as ``first``.

    Without a deduplication key it walks the chains' last jobs (status and names are
    theirs) and joins each one's first job (creation time and key are its); with one
    it starts from the first jobs holding the key (an index) instead."""
    order = -1 if filter.newest_first else 1
    window = _created_window(filter.created_after, filter.created_before)
    if filter.dedup_key is not None:
        firsts: Query = {"dedup_key": filter.dedup_key}
        cursor = _cursor(after, filter.newest_first)
        if cursor is not None:
            firsts["_id"] = cursor
        if window is not None:
            firsts["created_at"] = window
        heads = ChainFilter(statuses=filter.statuses, chain_names=filter.chain_names)
        return [
            {"$match": firsts},
            {"$sort": {"_id": order}},
            {
                "$lookup": {
                    "from": jobs,
                    "localField": "_id",
                    "foreignField": "chain_id",
                    "as": "_members",
                }
            },
            {"$unwind": "$_members"},
            {"$match": {"_members.next_job_id": None}},
            {"$replaceRoot": {"newRoot": {"$mergeObjects": ["$_members", {"first": "$$ROOT"}]}}},
            {"$unset": "first._members"},
            {"$match": chain_head_query(heads, None)},
            {"$limit": limit},
        ]
    join: Pipeline = [
        {"$lookup": {"from": jobs, "localField": "chain_id", "foreignField": "_id", "as": "first"}},
        {"$unwind": "$first"},
    ]
    pipeline: Pipeline = [
        {"$match": chain_head_query(filter, after)},
        {"$sort": {"chain_id": order}},
    ]
    if window is None:
        # Nothing to filter on the first job: join only the page's.
        return [*pipeline, {"$limit": limit}, *join]
    return [*pipeline, *join, {"$match": {"first.created_at": window}}, {"$limit": limit}]


def chain_query(chain_id: str) -> Query:
    """A chain's first and last job (one document for a chain of one job)."""
    return {"chain_id": chain_id, "$or": [{"_id": chain_id}, {"next_job_id": None}]}


def ids_query(ids: Sequence[str]) -> Query:
    """The jobs with these ids."""
    return {"_id": {"$in": list(ids)}}


def first_jobs_query(chain_ids: Sequence[str]) -> Query:
    """The first jobs of these chains (a chain's id is its first job's)."""
    return ids_query(chain_ids)


def chains_query(chain_ids: Sequence[str]) -> Query:
    """Every job of the given chains."""
    return {"chain_id": {"$in": list(chain_ids)}}


def cancellable_query(chain_id: str) -> Query:
    """The chain's last job while it is ``pending`` or ``blocked``."""
    return {
        "chain_id": chain_id,
        "next_job_id": None,
        "status": {"$in": [JobStatus.PENDING.value, JobStatus.BLOCKED.value]},
    }


def next_due_pipeline(queues: Sequence[str]) -> list[dict[str, Any]]:
    """Aggregation yielding at most one document ``{"wait_ms": n}``: milliseconds from
    the server's now until the earliest ``pending`` job of ``queues`` is due
    (negative when overdue)."""
    return [
        {"$match": {"status": JobStatus.PENDING.value, "queue": {"$in": list(queues)}}},
        {"$sort": {"scheduled_at": 1}},
        {"$limit": 1},
        {"$project": {"_id": 0, "wait_ms": {"$subtract": ["$scheduled_at", "$$NOW"]}}},
    ]
