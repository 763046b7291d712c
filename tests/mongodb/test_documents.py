"""Translation between stored job documents and records (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from queuert.records import JobError, JobStatus
from queuert_mongodb.documents import (
    chain_from_documents,
    chains_from_documents,
    error_document,
    error_from_document,
    job_from_document,
)

CREATED = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def stored(job_id: str = "j1", **fields: Any) -> dict[str, Any]:
    """A job document as the insert pipeline leaves it."""
    document: dict[str, Any] = {
        "_id": job_id,
        "chain_id": job_id,
        "chain_name": "images",
        "queue": "images",
        "position": 0,
        "status": "pending",
        "input": '{"id": 7}',
        "attempt": 0,
        "max_attempts": 3,
        "priority": 2,
        "scheduled_at": CREATED,
        "created_at": CREATED,
        "updated_at": CREATED,
        "leased_by": None,
        "leased_until": None,
        "output": None,
        "error": None,
        "next_job_id": None,
        "completed_at": None,
        "claim": None,
        "lock": 0,
    }
    document.update(fields)
    return document


def test_new_job_document_becomes_a_pending_record() -> None:
    record = job_from_document(stored())
    assert record.id == record.chain_id == "j1"
    assert record.status is JobStatus.PENDING
    assert (record.input, record.attempt, record.max_attempts, record.priority) == (
        '{"id": 7}',
        0,
        3,
        2,
    )
    assert record.scheduled_at == record.created_at == CREATED
    assert record.leased_by is None and record.error is None and not record.continued


def test_a_job_created_waiting_on_chains_says_it_has_blockers() -> None:
    """The worker loads ``job.blockers`` only for a record that says so."""
    assert not job_from_document(stored()).has_blockers
    assert job_from_document(stored(status="blocked", blockers_left=2)).has_blockers
    assert job_from_document(stored(blockers_left=0)).has_blockers


def test_running_job_document_carries_its_lease() -> None:
    until = CREATED + timedelta(minutes=1)
    record = job_from_document(
        stored(status="running", attempt=1, leased_by="worker-1", leased_until=until)
    )
    assert record.lease.owner == "worker-1" and record.lease.attempt == 1
    assert record.leased_until == until


def test_naive_dates_are_read_as_utc_and_aware_ones_converted() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    plus_two = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    record = job_from_document(stored(created_at=naive, updated_at=plus_two))
    assert record.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert record.created_at.tzinfo is UTC
    assert record.updated_at.utcoffset() == timedelta(0)
    assert record.updated_at == record.created_at


def test_error_round_trips_through_its_embedded_document() -> None:
    error = JobError(type="ValueError", message="bad", traceback="Traceback ...")
    assert error_from_document(error_document(error)) == error
    assert error_document(None) is None and error_from_document(None) is None
    record = job_from_document(stored(error=error_document(error)))
    assert record.error == error


def test_completed_and_continued_jobs() -> None:
    done = job_from_document(stored(status="completed", output='"ok"', completed_at=CREATED))
    assert done.output_value() == "ok" and not done.continued
    continued = job_from_document(stored(status="completed", next_job_id="j2"))
    assert continued.continued and continued.output is None


def test_chain_takes_input_from_its_first_job_and_state_from_its_last() -> None:
    first = stored("c1", status="completed", next_job_id="c2")
    later = CREATED + timedelta(seconds=5)
    last = stored(
        "c2",
        chain_id="c1",
        queue="images:distribute",
        position=1,
        input='{"step": 2}',
        status="failed",
        error=error_document(JobError("Boom", "it broke")),
        updated_at=later,
        completed_at=later,
    )
    chain = chain_from_documents(first, last)
    assert chain.id == "c1" and chain.input == '{"id": 7}'
    assert chain.status is JobStatus.FAILED and chain.last_job_id == "c2"
    assert chain.last_queue == "images:distribute"
    assert chain.error == JobError("Boom", "it broke")
    assert chain.created_at == CREATED and chain.updated_at == later == chain.completed_at
    # The query returns the two documents in any order.
    assert chains_from_documents([last, first]) == chain


def test_chain_of_one_job_is_one_document() -> None:
    only = stored("c1")
    chain = chains_from_documents([only])
    assert chain is not None and chain.id == chain.last_job_id == "c1"


def test_no_chain_without_its_last_or_first_job() -> None:
    assert chains_from_documents([]) is None
    assert chains_from_documents([stored("c1", next_job_id="c2")]) is None
    assert chains_from_documents([stored("c2", chain_id="c1", position=1)]) is None


def test_trace_context_and_dedup_key_are_read_back() -> None:
    assert job_from_document(stored("j1")).trace_context is None
    traced = job_from_document(stored("j1", trace_context='{"traceparent": "00-ab"}'))
    assert traced.trace_context == '{"traceparent": "00-ab"}'
    first = stored("c1", dedup_key="upload-7", next_job_id="c2")
    last = stored("c2", chain_id="c1", position=1)
    assert chain_from_documents(first, last).dedup_key == "upload-7"
    assert chain_from_documents(stored("c1"), stored("c1")).dedup_key is None
