"""Records built by position equal those built by their constructor."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from queuert.records import JobError, JobRecord, JobStatus, NewJob
from queuert.slots import positional_builder

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_record_built_by_position_equals_the_constructed_one() -> None:
    fields = {
        "id": "j",
        "chain_id": "c",
        "chain_name": "chain",
        "queue": "chain:step",
        "position": 1,
        "status": JobStatus.FAILED,
        "input": "{}",
        "attempt": 2,
        "max_attempts": 3,
        "priority": 4,
        "scheduled_at": NOW,
        "created_at": NOW,
        "updated_at": NOW,
        "leased_by": "w",
        "leased_until": NOW,
        "output": None,
        "error": JobError(type="E", message="m"),
        "next_job_id": None,
        "completed_at": NOW,
    }
    built = positional_builder(JobRecord)(*fields.values())
    assert type(built) is JobRecord
    assert built == JobRecord(**fields)  # type: ignore[arg-type]
    assert positional_builder(NewJob)("j", "j", "c", "c", 0, "1", 3, 0, None, 5, None) == NewJob(
        id="j",
        chain_id="j",
        chain_name="c",
        queue="c",
        position=0,
        input="1",
        max_attempts=3,
        delay_ms=5,
    )


def test_classes_that_need_their_constructor_get_it() -> None:
    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(frozen=True, slots=True)
    class Checked:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    assert positional_builder(Unslotted) is Unslotted
    assert positional_builder(Checked) is Checked
