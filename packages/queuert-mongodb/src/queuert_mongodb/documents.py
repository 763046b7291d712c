"""Translation between queuert's records and the documents of the jobs collection.

A job is one document whose ``_id`` is the job id. Besides the record's fields
it holds ``claim`` (the token of the last batch operation that changed it, so a
batch reads back exactly what it won) and ``lock`` (a counter a finalizer bumps
to take the document's write lock in its transaction). Times are BSON dates
(millisecond precision, UTC); errors are embedded documents.

Schema version 2 adds ``trace_context`` and ``concurrency_key`` (as given),
``dedup_key`` (on a chain's first job), ``blockers_left`` and
``run_on_blocker_failure`` (on a job waiting on other chains) and ``dependents``
(true on a chain's last job once a job waits on the chain; a continuation passes
it on), which tells the operations ending a chain to look for waiting jobs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from queuert.adapter_support import job_record
from queuert.records import ChainRecord, JobError, JobRecord, JobStatus

Document = Mapping[str, Any]


def error_document(error: JobError | None) -> dict[str, Any] | None:
    """The embedded document storing ``error``."""
    if error is None:
        return None
    return {"type": error.type, "message": error.message, "traceback": error.traceback}


def error_from_document(value: Any) -> JobError | None:
    if value is None:
        return None
    return JobError(type=value["type"], message=value["message"], traceback=value.get("traceback"))


def utc(value: datetime | None) -> datetime | None:
    """``value`` as an aware UTC datetime (BSON dates are UTC; a client configured
    without ``tz_aware`` returns them naive)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _utc(value: datetime) -> datetime:
    result = utc(value)
    assert result is not None
    return result


def job_from_document(doc: Document) -> JobRecord:
    """The record of a stored job document."""
    return job_record(
        doc["_id"],
        doc["chain_id"],
        doc["chain_name"],
        doc["queue"],
        int(doc["position"]),
        JobStatus(doc["status"]),
        doc["input"],
        int(doc["attempt"]),
        int(doc["max_attempts"]),
        int(doc["priority"]),
        _utc(doc["scheduled_at"]),
        _utc(doc["created_at"]),
        _utc(doc["updated_at"]),
        doc.get("leased_by"),
        utc(doc.get("leased_until")),
        doc.get("output"),
        error_from_document(doc.get("error")),
        doc.get("next_job_id"),
        utc(doc.get("completed_at")),
        doc.get("trace_context"),
        # Only a job created waiting on other chains holds the counter.
        doc.get("blockers_left") is not None,
    )


def chain_from_documents(first: Document, last: Document) -> ChainRecord:
    """The chain whose first job is ``first`` and whose last job is ``last`` (the same
    document for a chain of one job)."""
    return ChainRecord(
        id=first["_id"],
        chain_name=first["chain_name"],
        status=JobStatus(last["status"]),
        input=first["input"],
        output=last.get("output"),
        error=error_from_document(last.get("error")),
        last_job_id=last["_id"],
        last_queue=last["queue"],
        created_at=_utc(first["created_at"]),
        updated_at=_utc(last["updated_at"]),
        completed_at=utc(last.get("completed_at")),
        dedup_key=first.get("dedup_key"),
    )


def chains_from_documents(docs: Sequence[Document]) -> ChainRecord | None:
    """The chain among ``docs`` (its first job and its last, in any order, as
    :func:`~queuert_mongodb.queries.chain_query` finds them), or ``None`` when its
    last job is not among them."""
    last = next((doc for doc in docs if doc.get("next_job_id") is None), None)
    if last is None:
        return None
    first = next((doc for doc in docs if doc["_id"] == last["chain_id"]), None)
    if first is None:
        return None
    return chain_from_documents(first, last)
