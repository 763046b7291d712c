"""The worker's local queue under concurrency limits: when limits hold an
acquisition back, it is not refilled ahead of free slots until the worker's jobs
freed as many places as it has slots, or a while passed; an acquisition that
got all the room it asked for ends the wait."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from queuert import local_queue
from queuert.local_queue import LocalQueue, Prefetched
from queuert.records import JobRecord, JobStatus

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def waiting(count: int) -> list[Prefetched]:
    return [
        Prefetched(
            JobRecord(
                id=f"job-{n}",
                chain_id=f"job-{n}",
                chain_name="chain",
                queue="chain",
                position=0,
                status=JobStatus.RUNNING,
                input="{}",
                attempt=1,
                max_attempts=3,
                priority=0,
                scheduled_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            ),
            acquired_at=0.0,
        )
        for n in range(count)
    ]


def low(local: LocalQueue) -> bool:
    """Whether ``local`` asks to be refilled (read afresh after each step)."""
    return local.low


def fast_queue() -> LocalQueue:
    """A queue of fast handlers for 10 slots, sized by its ``prefetch`` of 100 alone."""
    local = LocalQueue(limit=100, concurrency=10, lease_ms=60_000)
    local.ran(1e-6)
    return local


def test_a_held_back_acquisition_waits_for_as_many_freed_places_as_slots() -> None:
    local = fast_queue()
    local.push(waiting(10))
    assert low(local)
    local.acquired(short=True, room=90, limited=True)
    for _ in range(9):
        local.freed()
    assert not low(local), "refilled before its jobs freed as many places as it has slots"
    local.freed()
    assert low(local)


def test_an_acquisition_that_got_all_the_room_it_asked_for_ends_the_wait() -> None:
    local = fast_queue()
    local.acquired(short=True, room=90, limited=True)
    local.acquired(short=False, room=20, limited=True)
    assert low(local)


def test_a_full_acquisition_for_free_slots_alone_keeps_the_wait() -> None:
    # It asked for no room, so it says nothing about how many the limits allow.
    local = fast_queue()
    local.acquired(short=True, room=90, limited=True)
    local.acquired(short=False, room=0, limited=True)
    assert not low(local)


def test_a_short_acquisition_without_limits_does_not_wait() -> None:
    local = fast_queue()
    local.acquired(short=True, room=90, limited=False)
    assert low(local)


def test_the_wait_lapses_so_that_places_freed_elsewhere_are_looked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = fast_queue()
    local.acquired(short=True, room=90, limited=True)
    assert not low(local)
    later = time.monotonic() + local_queue.HELD_BACK_S
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert low(local)
