"""Global concurrency limits hold across worker processes: the handlers themselves
never see more of a limited queue's jobs running at once than its limit (or than
its per-key limit for one key), every job completes, and a held-back job is not
an attempt."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import queuert
from queuert.adapters.memory_state import MemoryStateAdapter
from queuert.errors import ConfigurationError, ValidationError
from queuert.ports.state import StateCapabilities
from queuert_sqlite import SqliteStateAdapter
from tests.e2e.backends import open_backend
from tests.e2e.limit_workers import (
    KEY_LIMIT,
    KEYED,
    LIMITED,
    QUEUE_LIMIT,
    Item,
    Seen,
    limit_workers,
    read_counter,
)
from tests.e2e.processes import chain_statuses, unfinished_chains
from tests.waiting import eventually

BACKENDS = ["sqlite", "postgres", "mongodb"]


async def _wait_all_done(app: queuert.Queuert[Any], jobs: int) -> None:
    async def finished() -> bool:
        return not await unfinished_chains(app)

    await eventually(finished, timeout=120, interval=0.2, message=f"{jobs} chains not finished")
    assert await chain_statuses(app) == Counter({"completed": jobs})


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_queue_limit_of_3_holds_across_8_worker_processes(
    backend_name: str, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.json"
    jobs = 24
    async with open_backend(backend_name, tmp_path) as backend:
        assert backend.url is not None
        app = queuert.Queuert(state=backend.state, chains=[LIMITED, KEYED])
        async with limit_workers(
            8, state=backend.url, counter=counter, log_dir=tmp_path, work_ms=150
        ):
            handles = await app.enqueue_job_chains(
                None, LIMITED, [Item(n, key="all") for n in range(jobs)]
            )
            await _wait_all_done(app, jobs)
        seen = read_counter(counter)
        assert seen["total"] == jobs
        assert seen["max"]["*"] == QUEUE_LIMIT, seen["max"]
        for handle in handles:
            job = await app.get_job(handle.id)
            assert job is not None and job.attempt == 1, "a held-back job counted an attempt"


@pytest.mark.slow
@pytest.mark.parametrize("backend_name", BACKENDS)
async def test_per_key_limit_of_1_keeps_each_of_20_keys_serial(
    backend_name: str, tmp_path: Path
) -> None:
    counter = tmp_path / "counter.json"
    keys = [f"customer-{k}" for k in range(20)]
    items = [Item(n, key=keys[n % len(keys)]) for n in range(60)]
    async with open_backend(backend_name, tmp_path) as backend:
        assert backend.url is not None
        app = queuert.Queuert(state=backend.state, chains=[LIMITED, KEYED])
        async with limit_workers(
            4, state=backend.url, counter=counter, log_dir=tmp_path, work_ms=100
        ):
            await app.enqueue_job_chains(None, KEYED, items)
            await _wait_all_done(app, len(items))
        seen = read_counter(counter)
        assert seen["total"] == len(items)
        per_key = {key: seen["max"][key] for key in keys}
        assert set(per_key.values()) == {KEY_LIMIT}, per_key
        assert seen["max"]["*"] > 1, "different keys never ran in parallel"


async def test_the_concurrency_key_is_computed_from_the_input_at_enqueue() -> None:
    state = MemoryStateAdapter()
    await state.migrate()
    app = queuert.Queuert(state=state, chains=[KEYED])
    await app.enqueue_job_chains(None, KEYED, [Item(1, key="a"), Item(2, key="a"), Item(3, "b")])
    acquired = await state.acquire_limited_jobs(
        tx=None,
        queue=KEYED.name,
        limit=10,
        owner="w",
        lease_ms=60_000,
        concurrency_limit=1,
        per_key=True,
    )
    assert sorted(app.chain_def(KEYED).input_codec.decode(j.input).key for j in acquired) == [
        "a",
        "b",
    ]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"concurrency_limit": 0}, "0"),
        ({"concurrency_limit": -1}, "-1"),
        ({"concurrency_limit": "3"}, "'3'"),
        ({"concurrency_limit": True}, "True"),
        ({"concurrency_key": lambda item: item.key}, "concurrency_key"),
        ({"concurrency_limit": 1, "concurrency_key": "key"}, "'key'"),
    ],
)
def test_bad_limit_declarations_are_named_errors(options: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        queuert.chain("bad-limit", input=Item, output=Seen, **options)


def test_a_step_with_a_bad_limit_is_a_named_error() -> None:
    chain = queuert.chain("step-limit", input=Item, output=Seen)
    with pytest.raises(ValidationError, match="concurrency_limit"):
        chain.queue("next", input=Item, concurrency_limit=0)
    assert chain.queue("ok", input=Item, concurrency_limit=2).limit is not None


async def test_a_bad_concurrency_key_writes_nothing() -> None:
    state = MemoryStateAdapter()
    await state.migrate()
    chain = queuert.chain(
        "bad-key", input=Item, output=Seen, concurrency_limit=1, concurrency_key=lambda i: i.n
    )
    app = queuert.Queuert(state=state, chains=[chain])
    with pytest.raises(ValidationError, match="concurrency_key of queue 'bad-key'"):
        await app.enqueue_job_chain(None, chain, Item(1, key="a"))
    assert (await app.list_chains()).items == []


class _NoLimits(MemoryStateAdapter):
    capabilities = StateCapabilities(concurrent_transactions=False, multi_process=False)


async def test_a_worker_refuses_a_limit_its_adapter_cannot_enforce() -> None:
    state = _NoLimits()
    await state.migrate()
    app = queuert.Queuert(state=state, chains=[LIMITED])
    worker = app.worker()

    @worker.handler(LIMITED)
    async def handle(job: Any, ctx: Any) -> Seen:
        raise AssertionError("never runs")

    with pytest.raises(ConfigurationError, match="e2e-limited"):
        await worker.start()


async def test_a_worker_refills_a_limited_queue_without_waiting_for_its_poll(
    tmp_path: Path,
) -> None:
    # The handler returns its output, so the job's end is written after its slot is
    # free; the worker must acquire again once that write is done, not at its next
    # poll.
    state = SqliteStateAdapter(str(tmp_path / "jobs.db"))
    await state.migrate()
    chain = queuert.chain("refill", input=Item, output=Seen, concurrency_limit=2)
    app = queuert.Queuert(state=state, chains=[chain])
    await app.enqueue_job_chains(None, chain, [Item(n, key="k") for n in range(8)])
    worker = app.worker(concurrency=2, poll_interval=60.0)

    @worker.handler(chain)
    async def handle(job: Any, ctx: Any) -> Seen:
        return Seen(n=job.input.n)

    async with worker:

        async def all_done() -> bool:
            return not (await app.list_chains(status=("pending", "running"))).items

        await eventually(all_done, timeout=20, message="limited jobs not refilled before a poll")
    await state.close()
