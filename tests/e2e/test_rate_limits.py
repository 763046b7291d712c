"""Global rate limits hold across worker processes: no span of one second holds
more starts of a rate-limited queue's jobs than its count, and every job
completes.

The starts are measured by the handlers' own clocks (``time.time()`` when each
handler ran, all processes on this machine's clock), and also as the store
recorded them (the acquired record's ``updated_at``: the clock reading the
acquisition counted the start at); both must hold the rate. The batch's
duration and both measures are written to ``rate-limit-durations.txt`` in the
test's temporary directory and printed (``-s``), never asserted.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import queuert
from queuert.adapters.memory_state import MemoryStateAdapter
from queuert.errors import ConfigurationError, ValidationError
from queuert.ports.state import StateCapabilities
from tests.e2e.backends import open_backend
from tests.e2e.processes import chain_statuses, unfinished_chains
from tests.e2e.rate_workers import RATE, RATED, Call, Called, rate_workers, read_starts
from tests.waiting import eventually

BACKENDS = ["sqlite", "postgres"]


def busiest_sliding_second(starts: list[float]) -> int:
    """The most of the (time-ordered) starts within any span ``(t - 1 s, t]``."""
    most, first = 0, 0
    for last, t in enumerate(starts):
        while t - starts[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def test_busiest_sliding_second_counts_across_whole_seconds() -> None:
    assert busiest_sliding_second([0.9, 0.95, 1.05, 1.1]) == 4
    assert busiest_sliding_second([0.5, 1.5, 2.5]) == 1
    assert busiest_sliding_second([0.0, 0.999, 1.0]) == 2


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_rate_of_50_per_second_holds_across_3_worker_processes(
    backend_name: str, tmp_path: Path
) -> None:
    jobs = 1000
    starts_dir = tmp_path / "starts"
    starts_dir.mkdir()
    async with open_backend(backend_name, tmp_path) as backend:
        assert backend.url is not None
        app = queuert.Queuert(state=backend.state, chains=[RATED])
        async with rate_workers(3, state=backend.url, starts_dir=starts_dir, log_dir=tmp_path):
            began = math.ceil(time.time()) + 1.0
            start_at = datetime.fromtimestamp(began, UTC)
            await app.enqueue_job_chains(
                None, RATED, [Call(n) for n in range(jobs)], start_at=start_at
            )

            async def finished() -> bool:
                return not await unfinished_chains(app)

            await eventually(finished, timeout=180, interval=0.2, message="rated jobs unfinished")
            ended = time.time()
        assert await chain_statuses(app) == Counter({"completed": jobs})
    starts = read_starts(starts_dir)
    stored = starts.stored
    assert len(stored) == jobs, "a handler ran twice or not at all"
    assert busiest_sliding_second(starts.handler) <= RATE, (
        "more handlers started within one second than the rate"
    )
    assert busiest_sliding_second(stored) <= RATE, (
        "more starts recorded in one second than the rate"
    )
    report = (
        f"{backend_name}: {jobs} jobs at {RATE}/s: first to last start "
        f"{stored[-1] - stored[0]:.2f} s, due to all done {ended - began:.2f} s, "
        f"busiest one-second span {busiest_sliding_second(stored)} as stored, "
        f"{busiest_sliding_second(starts.handler)} as the handlers saw it"
    )
    with (tmp_path.parent / "rate-limit-durations.txt").open("a") as out:
        out.write(report + "\n")
    print(report)


@pytest.mark.parametrize("value", ["50", "50/day", "0/s", "-1/s", "1.5/s", "", 50, "5/s/s"])
def test_bad_rate_declarations_are_named_errors(value: Any) -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        queuert.chain("bad-rate", input=Call, output=Called, rate_limit=value)


def test_rates_parse_per_second_minute_and_hour() -> None:
    for text, window_ms in (("50/s", 1_000), ("100/min", 60_000), ("1000/h", 3_600_000)):
        rate = queuert.chain("rate-units", input=Call, output=Called, rate_limit=text).rate
        assert rate is not None and rate.window_ms == window_ms and not rate.per_key
    keyed = queuert.chain(
        "keyed-rate", input=Call, output=Called, rate_limit="5/min", concurrency_key=str
    )
    assert keyed.rate is not None and keyed.rate.per_key and keyed.limit is None
    step = keyed.queue("next", input=Call, rate_limit="2/s")
    assert step.rate is not None and step.rate.count == 2


class _NoRates(MemoryStateAdapter):
    capabilities = StateCapabilities(concurrent_transactions=False, multi_process=False)


async def test_a_worker_refuses_a_rate_its_adapter_cannot_enforce() -> None:
    state = _NoRates()
    await state.migrate()
    app = queuert.Queuert(state=state, chains=[RATED])
    worker = app.worker()

    @worker.handler(RATED)
    async def handle(job: Any, ctx: Any) -> Called:
        raise AssertionError("never runs")

    with pytest.raises(ConfigurationError, match=r"e2e-rated.*rate limit"):
        await worker.start()


async def test_a_held_back_worker_wakes_when_the_next_window_opens() -> None:
    # A poll interval far longer than the test: the worker must wake by itself when
    # the window that held its jobs back ends, and no job is an extra attempt.
    state = MemoryStateAdapter()
    await state.migrate()
    chain = queuert.chain("wake-rated", input=Call, output=Called, rate_limit="3/s")
    app = queuert.Queuert(state=state, chains=[chain])
    handles = await app.enqueue_job_chains(None, chain, [Call(n) for n in range(7)])
    worker = app.worker(concurrency=10, poll_interval=600.0)
    started: list[float] = []

    @worker.handler(chain)
    async def run(job: Any, ctx: Any) -> Called:
        started.append(time.time())
        return Called(n=job.input.n)

    async with worker:

        async def all_done() -> bool:
            return not (await app.list_chains(status=("pending", "running"))).items

        await eventually(all_done, timeout=20, message="held-back jobs waited for a poll")
    assert busiest_sliding_second(sorted(started)) <= 3
    for handle in handles:
        job = await app.get_job(handle.id)
        assert job is not None and job.attempt == 1, "a held-back job counted an attempt"
