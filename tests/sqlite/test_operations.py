"""Job operations where the SQL itself could go wrong: ordering across queues,
timestamp precision, and input the adapter must refuse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from queuert.errors import ValidationError
from queuert_sqlite import SqliteStateAdapter
from queuert_sqlite.statements import MAX_MERGED_QUEUES
from tests.sqlite.helpers import new_job


async def test_acquisition_across_queues_follows_schedule_then_priority_then_id(
    adapter: SqliteStateAdapter,
) -> None:
    base = datetime.now(UTC) - timedelta(minutes=10)
    specs = [
        ("a", 3, 0),
        ("b", 1, 0),
        ("a", 1, 5),
        ("b", 2, 0),
        ("a", 2, 1),
        ("b", 0, 9),
        ("c", 0, 99),  # a queue the worker does not take
    ]
    jobs = [
        new_job(queue, scheduled_at=base + timedelta(seconds=second), priority=priority)
        for queue, second, priority in specs
    ]
    await adapter.create_jobs(tx=None, jobs=jobs)
    expected = sorted(
        (job for job in jobs if job.queue != "c"),
        key=lambda job: (job.scheduled_at, -job.priority, job.id),
    )
    first = await adapter.acquire_jobs(
        tx=None, queues=["a", "b"], limit=4, owner="w", lease_ms=1000
    )
    rest = await adapter.acquire_jobs(tx=None, queues=["a", "b"], limit=9, owner="w", lease_ms=1000)
    assert [job.id for job in first + rest] == [job.id for job in expected]


async def test_future_jobs_are_not_acquired_and_time_until_next_job_counts_down(
    adapter: SqliteStateAdapter,
) -> None:
    await adapter.create_jobs(tx=None, jobs=[new_job(delay_ms=60_000)])
    assert await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=10) == []
    wait = await adapter.time_until_next_job(tx=None, queues=["q", "other"])
    assert wait is not None and 59 < wait <= 60
    assert await adapter.time_until_next_job(tx=None, queues=["other"]) is None


async def test_timestamps_round_trip_to_the_microsecond(adapter: SqliteStateAdapter) -> None:
    when = datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    (created,) = await adapter.create_jobs(tx=None, jobs=[new_job(scheduled_at=when)])
    stored = await adapter.get_job(tx=None, job_id=created.id)
    assert stored is not None
    assert stored.scheduled_at == when == created.scheduled_at
    assert stored.scheduled_at.tzinfo is not None
    assert stored.created_at == created.created_at
    assert adapter.capabilities.clock_precision_ms == 0.001


async def test_an_offset_datetime_is_stored_as_the_same_instant(
    adapter: SqliteStateAdapter,
) -> None:
    when = datetime(2031, 1, 1, 12, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=5)))
    (created,) = await adapter.create_jobs(tx=None, jobs=[new_job(scheduled_at=when)])
    assert created.scheduled_at == when
    assert created.scheduled_at.utcoffset() == timedelta(0)


async def test_a_naive_scheduled_at_is_refused_before_anything_is_written(
    adapter: SqliteStateAdapter,
) -> None:
    naive = datetime(2031, 1, 1, 12, 0)
    with pytest.raises(ValidationError, match="scheduled_at"):
        await adapter.create_jobs(tx=None, jobs=[new_job(), new_job(scheduled_at=naive)])
    assert await adapter.time_until_next_job(tx=None, queues=["q"]) is None


async def test_a_worker_of_many_queues_acquires_in_the_same_order(
    adapter: SqliteStateAdapter,
) -> None:
    base = datetime.now(UTC) - timedelta(minutes=10)
    queues = [f"chain:step-{n}" for n in range(MAX_MERGED_QUEUES + 8)]
    jobs = [
        new_job(queue, scheduled_at=base + timedelta(seconds=n % 7), priority=n % 3)
        for n, queue in enumerate(queues)
    ]
    await adapter.create_jobs(tx=None, jobs=jobs)
    expected = sorted(jobs, key=lambda job: (job.scheduled_at, -job.priority, job.id))
    first = await adapter.acquire_jobs(tx=None, queues=queues, limit=10, owner="w", lease_ms=1000)
    rest = await adapter.acquire_jobs(tx=None, queues=queues, limit=99, owner="w", lease_ms=1000)
    assert [job.id for job in first + rest] == [job.id for job in expected]
