"""Recurring schedules: one chain per slot however many workers run, catch-up as
configured after a stop, later slots after a failing chain, the slot time in the
handler, and named errors for bad declarations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import queuert
from queuert.adapters.memory_state import MemoryStateAdapter
from queuert.errors import (
    ConfigurationError,
    InputValidationError,
    NonRetryableError,
    UnknownChainError,
)
from queuert.ports.state import StateCapabilities
from queuert.schedules import ON_TIME, ScheduleError, Scheduler
from tests.e2e.backends import open_backend
from tests.e2e.limit_workers import TICKS, Seen, Tick, limit_workers
from tests.waiting import eventually

T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)  # a multiple of 10 s since the epoch


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


async def _app(*, catch_up: str = "latest") -> queuert.Queuert[Any]:
    state = MemoryStateAdapter()
    await state.migrate()
    app = queuert.Queuert(state=state, chains=[TICKS])
    app.schedule(
        "every-10s",
        TICKS,
        every=timedelta(seconds=10),
        input=lambda slot: Tick(slot=slot.isoformat()),
        catch_up=catch_up,  # type: ignore[arg-type]
    )
    return app


async def _started_slots(app: queuert.Queuert[Any]) -> list[datetime]:
    chains = (await app.list_chains(limit=1000)).items
    slots = [await app.schedule_slot(chain.id) for chain in chains]
    return sorted(slot.slot_time for slot in slots if slot is not None)


@pytest.mark.parametrize(
    ("catch_up", "after_the_stop"),
    [
        ("latest", [T0 + timedelta(seconds=40)]),
        ("all", [T0 + timedelta(seconds=s) for s in (20, 30, 40)]),
        ("none", []),
    ],
)
async def test_a_worker_stopped_across_slots_catches_up_as_configured(
    catch_up: str, after_the_stop: list[datetime]
) -> None:
    app = await _app(catch_up=catch_up)
    clock = FakeClock(T0)
    scheduler = Scheduler(app, clock=clock)
    assert await scheduler.tick() == [], "a new schedule starts with the next slot"
    clock.now = T0 + timedelta(seconds=10, milliseconds=200)
    assert [slot for _, slot in await scheduler.tick()] == [T0 + timedelta(seconds=10)]
    # Stopped for three slots; back 8 s after the last of them (more than ON_TIME).
    assert timedelta(seconds=8) > ON_TIME
    clock.now = T0 + timedelta(seconds=48)
    started = [slot for _, slot in await scheduler.tick()]
    assert started == after_the_stop
    assert await _started_slots(app) == [T0 + timedelta(seconds=10), *after_the_stop]
    assert await scheduler.tick() == [], "a slot started once is not started again"


async def test_two_workers_ticking_at_once_start_a_slot_once() -> None:
    app = await _app()
    clock = FakeClock(T0)
    first, second = Scheduler(app, clock=clock), Scheduler(app, clock=clock)
    clock.now = T0 + timedelta(seconds=10, milliseconds=1)
    started = await first.tick() + await second.tick()
    assert [slot for _, slot in started] == [T0 + timedelta(seconds=10)]
    (info,) = await app.list_schedules()
    assert info.last_slot == T0 + timedelta(seconds=10)
    assert info.last_chain_id is not None
    assert info.every == timedelta(seconds=10) and info.catch_up == "latest"


async def test_a_failing_chain_keeps_later_slots_and_its_handler_sees_the_slot(
    tmp_path: Path,
) -> None:
    async with open_backend("sqlite", tmp_path) as backend:
        app = queuert.Queuert(state=backend.state, chains=[TICKS])
        app.schedule(
            "failing", TICKS, every=timedelta(seconds=1), input=lambda s: Tick(s.isoformat())
        )
        worker = app.worker(concurrency=2, poll_interval=0.1)
        seen: list[tuple[str, datetime | None]] = []

        @worker.handler(TICKS)
        async def fail(job: Any, ctx: Any) -> Seen:
            slot = await app.schedule_slot(job.chain_id)
            seen.append((job.input.slot, None if slot is None else slot.slot_time))
            raise NonRetryableError("this chain always fails")

        async with worker:
            await eventually(lambda: len(seen) >= 3, timeout=20, message="three slots not started")
        chains = (await app.list_chains(limit=100)).items
        assert chains and all(chain.status.value == "failed" for chain in chains)
        for slot_text, slot_time in seen:
            assert slot_time is not None and slot_time.isoformat() == slot_text
        assert len({slot for slot, _ in seen}) == len(seen)


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", ["sqlite", "postgres", "mongodb"])
async def test_three_worker_processes_start_each_one_second_slot_exactly_once(
    backend_name: str, tmp_path: Path
) -> None:
    async with open_backend(backend_name, tmp_path) as backend:
        assert backend.url is not None
        app = queuert.Queuert(state=backend.state, chains=[TICKS])

        async def slots() -> list[datetime]:
            return await _started_slots(app)

        async with limit_workers(
            3, state=backend.url, counter=tmp_path / "c.json", log_dir=tmp_path, schedule=True
        ):

            async def ten_slots() -> bool:
                return len(await slots()) >= 10

            await eventually(ten_slots, timeout=60, interval=0.5, message="ten slots not started")
        started = await slots()
        chains = (await app.list_chains(limit=1000)).items
        assert len(chains) == len(started) == len(set(started)), "a slot started twice"
        expected = [started[0] + timedelta(seconds=k) for k in range(len(started))]
        assert started == expected, "a slot was skipped"


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cron": "61 * * * *"}, "61 \\* \\* \\* \\*"),
        ({"cron": "0 3 * * *", "timezone": "Mars/Olympus"}, "Mars/Olympus"),
        ({"every": timedelta(milliseconds=500)}, "every="),
        ({"every": timedelta(seconds=1.5)}, "every="),
        ({"cron": "0 3 * * *", "every": timedelta(hours=1)}, "exactly one"),
        ({}, "exactly one"),
        ({"every": timedelta(hours=1), "catch_up": "some"}, "'some'"),
    ],
)
def test_bad_schedule_declarations_are_named_errors(options: dict[str, Any], named: str) -> None:
    app = queuert.Queuert(state=MemoryStateAdapter(), chains=[TICKS])
    with pytest.raises(ScheduleError, match=named):
        app.schedule("bad", TICKS, input=Tick("x"), **options)
    assert app.schedules == {}


def test_a_schedule_name_is_declared_once_and_its_chain_must_be_registered() -> None:
    app = queuert.Queuert(state=MemoryStateAdapter(), chains=[TICKS])
    app.schedule("hourly", TICKS, cron="0 * * * *", input=Tick("x"))
    with pytest.raises(ScheduleError, match="already declared"):
        app.schedule("hourly", TICKS, every=timedelta(hours=1), input=Tick("x"))
    other = queuert.chain("not-registered", input=Tick, output=Seen)
    with pytest.raises(UnknownChainError):
        app.schedule("other", other, every=timedelta(hours=1), input=Tick("x"))


def test_cron_slots_follow_the_time_zone_across_a_daylight_saving_change() -> None:
    app = queuert.Queuert(state=MemoryStateAdapter(), chains=[TICKS])
    daily = app.schedule("daily", TICKS, cron="0 3 * * *", input=Tick("x"), timezone="Europe/Paris")
    # Paris moves from UTC+1 to UTC+2 on 2025-03-30: 03:00 local is 02:00 UTC before
    # and 01:00 UTC after.
    slots = daily.slots_between(
        datetime(2025, 3, 28, tzinfo=UTC), datetime(2025, 4, 1, tzinfo=UTC), 10
    )
    assert slots == [
        datetime(2025, 3, 28, 2, tzinfo=UTC),
        datetime(2025, 3, 29, 2, tzinfo=UTC),
        datetime(2025, 3, 30, 1, tzinfo=UTC),
        datetime(2025, 3, 31, 1, tzinfo=UTC),
    ]
    assert daily.next_slot(datetime(2025, 3, 29, 2, tzinfo=UTC)) == datetime(
        2025, 3, 30, 1, tzinfo=UTC
    )


def test_a_fixed_input_that_does_not_match_the_chain_is_refused_at_declaration() -> None:
    app = queuert.Queuert(state=MemoryStateAdapter(), chains=[TICKS])
    with pytest.raises(InputValidationError):
        app.schedule("wrong", TICKS, every=timedelta(hours=1), input={"slot": 3})  # type: ignore[arg-type]
    assert app.schedules == {}


class _NoSchedules(MemoryStateAdapter):
    capabilities = StateCapabilities(concurrent_transactions=False, multi_process=False)


async def test_a_worker_refuses_schedules_its_adapter_cannot_keep() -> None:
    state = _NoSchedules()
    await state.migrate()
    app = queuert.Queuert(state=state, chains=[TICKS])
    app.schedule("hourly", TICKS, every=timedelta(hours=1), input=Tick("x"))
    worker = app.worker()

    @worker.handler(TICKS)
    async def handle(job: Any, ctx: Any) -> Seen:
        raise AssertionError("never runs")

    with pytest.raises(ConfigurationError, match="schedules"):
        await worker.start()
