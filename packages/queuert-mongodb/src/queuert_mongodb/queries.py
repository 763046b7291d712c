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
Sort = list[tuple[str, int]]

ACQUIRE_SORT: Sort = [("scheduled_at", 1), ("priority", -1), ("_id", 1)]
"""The order jobs are acquired in: oldest ``scheduled_at``, then higher priority, then id."""

REAP_SORT: Sort = [("leased_until", 1), ("_id", 1)]
ID_SORT: Sort = [("_id", 1)]
CHAIN_SORT: Sort = [("chain_id", 1)]

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


def still_eligible_query(ids: Sequence[str]) -> Query:
    """Those of ``ids`` that are still ``pending`` and due: what an acquisition may
    take after choosing its candidates."""
    return {"_id": {"$in": list(ids)}, "status": JobStatus.PENDING.value, "$expr": _DUE}


def expired_query() -> Query:
    """``running`` jobs whose lease expired by the server's clock."""
    return {"status": JobStatus.RUNNING.value, "$expr": _EXPIRED}


def still_expired_query(ids: Sequence[str]) -> Query:
    return {"_id": {"$in": list(ids)}, "status": JobStatus.RUNNING.value, "$expr": _EXPIRED}


def claimed_query(ids: Sequence[str], token: str) -> Query:
    """Those of ``ids`` that the batch operation carrying ``token`` changed."""
    return {"_id": {"$in": list(ids)}, "claim": token}


def job_list_query(filter: JobFilter, after: str | None) -> Query:
    """Jobs matching ``filter`` with an id greater than ``after``."""
    query: Query = {}
    if after is not None:
        query["_id"] = {"$gt": after}
    if filter.statuses is not None:
        query["status"] = {"$in": [JobStatus(status).value for status in filter.statuses]}
    if filter.chain_id is not None:
        query["chain_id"] = filter.chain_id
    if filter.queues is not None:
        query["queue"] = {"$in": list(filter.queues)}
    return query


def chain_head_query(filter: ChainFilter, after: str | None) -> Query:
    """The last jobs of chains matching ``filter`` whose chain id is greater than
    ``after`` (a chain's status is its last job's)."""
    query: Query = {"next_job_id": None}
    if after is not None:
        query["chain_id"] = {"$gt": after}
    if filter.statuses is not None:
        query["status"] = {"$in": [JobStatus(status).value for status in filter.statuses]}
    if filter.chain_names is not None:
        query["chain_name"] = {"$in": list(filter.chain_names)}
    if filter.queues is not None:
        query["queue"] = {"$in": list(filter.queues)}
    return query


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
