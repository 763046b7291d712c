"""Update pipelines and the inserting upsert (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import bson
import pytest

from queuert.records import LEASE_EXPIRED_ERROR, JobError, NewJob
from queuert_mongodb import updates
from queuert_mongodb.documents import error_document

SNEAKY = "$attempt"
"""A caller's value that a pipeline would read as a field path if it were not literal."""

AT = datetime(2030, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)


def new_job(**fields: Any) -> NewJob:
    values: dict[str, Any] = {
        "id": "j1",
        "chain_id": "j1",
        "chain_name": "c",
        "queue": "c",
        "position": 0,
        "input": "{}",
        "max_attempts": 3,
    }
    values.update(fields)
    return NewJob(**values)


def fields_of(pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    stages = [stage["$set"] for stage in pipeline if "$set" in stage]
    assert len(stages) == 1
    result: dict[str, Any] = stages[0]
    return result


def encodable(pipeline: list[dict[str, Any]]) -> None:
    bson.encode({"u": pipeline})


def test_insert_never_matches_a_stored_job() -> None:
    assert updates.insert_filter("j1") == {"_id": "j1", updates.INSERT_MARKER: True}
    pipeline = updates.insert_pipeline(new_job())
    assert pipeline[-1] == {"$unset": [updates.INSERT_MARKER]}


def test_insert_writes_a_pending_job_created_at_the_server_clock() -> None:
    fields = fields_of(updates.insert_pipeline(new_job(priority=4)))
    assert fields["status"] == {"$literal": "pending"}
    assert fields["attempt"] == {"$literal": 0}
    assert fields["priority"] == {"$literal": 4}
    assert fields["created_at"] == fields["updated_at"] == "$$NOW"
    assert fields["scheduled_at"] == "$$NOW"
    for empty in ("leased_by", "leased_until", "output", "error", "next_job_id", "completed_at"):
        assert fields[empty] is None


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        (new_job(delay_ms=60_000), {"$add": ["$$NOW", 60_000]}),
        (new_job(scheduled_at=AT, delay_ms=60_000), {"$literal": AT}),
    ],
)
def test_insert_schedules_by_delay_or_absolute_time(job: NewJob, expected: Any) -> None:
    assert fields_of(updates.insert_pipeline(job))["scheduled_at"] == expected


def test_every_caller_value_is_literal() -> None:
    job = new_job(id=SNEAKY, chain_id=SNEAKY, chain_name=SNEAKY, queue=SNEAKY, input=SNEAKY)
    fields = fields_of(updates.insert_pipeline(job))
    for name in ("chain_id", "chain_name", "queue", "input"):
        assert fields[name] == {"$literal": SNEAKY}
    owner = fields_of(updates.acquire_update(owner=SNEAKY, lease_ms=1, token=SNEAKY))
    assert owner["leased_by"] == owner["claim"] == {"$literal": SNEAKY}
    assert fields_of(updates.complete_update(SNEAKY))["output"] == {"$literal": SNEAKY}
    assert fields_of(updates.continued_update(SNEAKY))["next_job_id"] == {"$literal": SNEAKY}
    error = JobError(type=SNEAKY, message=SNEAKY)
    assert fields_of(updates.fail_update(error))["error"] == {"$literal": error_document(error)}


def test_acquire_counts_an_attempt_and_leases_by_the_server_clock() -> None:
    fields = fields_of(updates.acquire_update(owner="w", lease_ms=30_000, token="t"))
    assert fields["status"] == {"$literal": "running"}
    assert fields["attempt"] == {"$add": ["$attempt", 1]}
    assert fields["leased_until"] == {"$add": ["$$NOW", 30_000]}
    assert fields["updated_at"] == "$$NOW"


def test_renew_moves_the_expiry_only() -> None:
    assert fields_of(updates.renew_update(5_000)) == {
        "leased_until": {"$add": ["$$NOW", 5_000]},
        "updated_at": "$$NOW",
    }


def test_finishing_clears_the_lease() -> None:
    for pipeline in (
        updates.complete_update('"x"'),
        updates.continued_update("j2"),
        updates.fail_update(JobError("E", "m")),
    ):
        fields = fields_of(pipeline)
        assert fields["leased_by"] is None and fields["leased_until"] is None
        assert fields["completed_at"] == "$$NOW"


def test_reschedule_refunds_the_attempt_only_when_asked() -> None:
    kept = fields_of(
        updates.reschedule_update(error=None, delay_ms=0, scheduled_at=None, refund_attempt=False)
    )
    assert "attempt" not in kept and kept["scheduled_at"] == "$$NOW"
    assert kept["error"] == {"$literal": None}
    refunded = fields_of(
        updates.reschedule_update(
            error=JobError("E", "m"), delay_ms=1_000, scheduled_at=None, refund_attempt=True
        )
    )
    assert refunded["attempt"] == {"$subtract": ["$attempt", 1]}
    assert refunded["scheduled_at"] == {"$add": ["$$NOW", 1_000]}
    at = fields_of(
        updates.reschedule_update(error=None, delay_ms=1_000, scheduled_at=AT, refund_attempt=False)
    )
    assert at["scheduled_at"] == {"$literal": AT}


def test_reap_fails_exhausted_jobs_and_returns_others_to_pending() -> None:
    fields = fields_of(updates.reap_update("t"))
    exhausted = {"$gte": ["$attempt", "$max_attempts"]}
    assert fields["status"] == {
        "$cond": [exhausted, {"$literal": "failed"}, {"$literal": "pending"}]
    }
    assert fields["scheduled_at"] == {"$cond": [exhausted, "$scheduled_at", "$$NOW"]}
    assert fields["completed_at"] == {"$cond": [exhausted, "$$NOW", None]}
    assert fields["error"] == {"$literal": error_document(LEASE_EXPIRED_ERROR)}
    assert fields["claim"] == {"$literal": "t"}


def test_lock_is_a_real_write() -> None:
    assert updates.LOCK_UPDATE == {"$inc": {"lock": 1}}


def test_every_pipeline_encodes_as_bson() -> None:
    for pipeline in (
        updates.insert_pipeline(new_job(scheduled_at=AT)),
        updates.acquire_update(owner="w", lease_ms=1, token="t"),
        updates.renew_update(1),
        updates.complete_update("1"),
        updates.continued_update("j2"),
        updates.reschedule_update(
            error=JobError("E", "m", "tb"), delay_ms=0, scheduled_at=AT, refund_attempt=True
        ),
        updates.fail_update(JobError("E", "m")),
        updates.reap_update("t"),
        updates.cancel_update(),
    ):
        encodable(pipeline)


def test_insert_stores_trace_context_and_concurrency_key_as_given() -> None:
    fields = fields_of(
        updates.insert_pipeline(new_job(trace_context=SNEAKY, concurrency_key=SNEAKY))
    )
    assert fields["trace_context"] == {"$literal": SNEAKY}
    assert fields["concurrency_key"] == {"$literal": SNEAKY}
    plain = fields_of(updates.insert_pipeline(new_job()))
    assert plain["trace_context"] == plain["concurrency_key"] == {"$literal": None}


def test_insert_extra_fields_override_the_defaults() -> None:
    extra = {"status": {"$literal": "blocked"}, "dedup_key": {"$literal": "k"}}
    fields = fields_of(updates.insert_pipeline(new_job(), extra))
    assert fields["status"] == {"$literal": "blocked"}
    assert fields["dedup_key"] == {"$literal": "k"}
    assert updates.insert_pipeline(new_job(), extra)[-1] == {"$unset": [updates.INSERT_MARKER]}
