"""The worker's local queue under concurrency limits: when limits hold an
acquisition back, it is capped at what it holds and refilled at half of it,
not on every freed place; an acquisition that gets all it asked for lifts the cap."""

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


def fast_queue() -> LocalQueue:
    """A queue of fast handlers, sized by its ``prefetch`` of 100 alone."""
    local = LocalQueue(limit=100, concurrency=10, lease_ms=60_000)
    local.ran(1e-6)
    return local


def test_a_short_acquisition_under_limits_caps_the_queue_at_what_it_holds() -> None:
    local = fast_queue()
    local.push(waiting(40))
    local.acquired(short=True, room=60, limited=True)
    assert local.room == 0 and not local.low
    for _ in range(19):
        local.pop()
    assert not local.low, "refilled before half of what it held had started"
    local.pop()
    assert (local.low, local.room) == (True, 20)


def test_an_acquisition_that_got_all_it_asked_for_lifts_the_cap() -> None:
    local = fast_queue()
    local.push(waiting(40))
    local.acquired(short=True, room=60, limited=True)
    local.acquired(short=False, room=20, limited=True)
    assert local.room == 60


def test_a_short_acquisition_without_limits_leaves_the_queue_uncapped() -> None:
    local = fast_queue()
    local.push(waiting(40))
    local.acquired(short=True, room=60, limited=False)
    assert local.room == 60


def test_a_full_acquisition_for_free_slots_alone_keeps_the_cap() -> None:
    # It asked for no room, so it says nothing about how many the limits allow.
    local = fast_queue()
    local.push(waiting(40))
    local.acquired(short=True, room=60, limited=True)
    local.acquired(short=False, room=0, limited=True)
    assert local.room == 0


def test_the_cap_lapses_so_that_room_freed_elsewhere_is_looked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    local = fast_queue()
    local.push(waiting(40))
    local.acquired(short=True, room=60, limited=True)
    assert local.room == 0
    later = time.monotonic() + local_queue.CEILING_S
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert local.room == 60
