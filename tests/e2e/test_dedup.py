"""Deduplicated chain starts on every backend, and across processes sharing a store."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from typing import Any

import pytest

import queuert
from tests.e2e.backends import Backend, env_with_pythonpath
from tests.e2e.dedup_enqueuer import Upload, upload_chain


def make_app(state: queuert.StateAdapter[Any]) -> queuert.Queuert[Any]:
    return queuert.Queuert(state=state, chains=[upload_chain])


async def test_a_second_start_of_a_key_returns_the_first_chain(backend: Backend) -> None:
    app = make_app(backend.state)
    first = await app.enqueue_job_chain(None, upload_chain, Upload("a"), dedup_key="file-1")
    again = await app.enqueue_job_chain(None, upload_chain, Upload("b"), dedup_key="file-1")
    assert not first.deduplicated
    assert again.deduplicated and again.id == first.id
    chain = await app.get_chain(first.id)
    assert chain is not None and chain.dedup_key == "file-1"
    assert chain.input_value() == {"key": "a"}
    listed = await app.list_chains(dedup_key="file-1")
    assert [c.id for c in listed.items] == [first.id]


async def test_a_batch_with_repeated_keys_starts_one_chain_per_key(backend: Backend) -> None:
    app = make_app(backend.state)
    handles = await app.enqueue_job_chains(
        None,
        upload_chain,
        [Upload(str(n)) for n in range(5)],
        dedup_keys=["x", "y", "x", "x", "y"],
    )
    assert [h.deduplicated for h in handles] == [False, False, True, True, True]
    assert len({handles[0].id, handles[2].id, handles[3].id}) == 1
    assert handles[1].id == handles[4].id != handles[0].id
    assert len((await app.list_chains(chain=upload_chain)).items) == 2


async def test_scope_any_with_a_window_and_validation(backend: Backend) -> None:
    app = make_app(backend.state)
    first = await app.enqueue_job_chain(
        None,
        upload_chain,
        Upload("a"),
        dedup_key="w",
        dedup_scope="any",
        dedup_window=timedelta(hours=1),
    )
    await app.cancel_chain(first.id)
    again = await app.enqueue_job_chain(
        None, upload_chain, Upload("b"), dedup_key="w", dedup_scope="any"
    )
    assert again.deduplicated and again.id == first.id
    fresh = await app.enqueue_job_chain(None, upload_chain, Upload("c"), dedup_key="w")
    assert not fresh.deduplicated
    for bad in (
        {"dedup_key": ""},
        {"dedup_key": "k", "dedup_scope": "sometimes"},
        {"dedup_key": "k", "dedup_window": timedelta(seconds=1)},
        {"dedup_key": "k", "dedup_scope": "any", "dedup_window": timedelta(0)},
        {"dedup_key": "k\x00"},
    ):
        with pytest.raises(queuert.ValidationError):
            await app.enqueue_job_chain(None, upload_chain, Upload("bad"), **bad)
    assert len((await app.list_chains(chain=upload_chain)).items) == 2


async def test_many_concurrent_starts_of_one_key_start_one_chain(backend: Backend) -> None:
    other = await backend.open_another()
    try:
        apps = [make_app(backend.state), make_app(other)]

        async def start(n: int) -> queuert.ChainHandle[str]:
            app = apps[n % 2]
            return await app.enqueue_job_chain(None, upload_chain, Upload(str(n)), dedup_key="k")

        handles = await asyncio.gather(*(start(n) for n in range(20)))
    finally:
        if other is not backend.state:
            await other.close()
    assert len({h.id for h in handles}) == 1
    assert sum(not h.deduplicated for h in handles) == 1
    assert len((await apps[0].list_chains(chain=upload_chain)).items) == 1


async def test_processes_starting_the_same_keys_start_one_chain_per_key(
    shared_backend: Backend,
) -> None:
    assert shared_backend.url is not None
    keys = 25
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.e2e.dedup_enqueuer",
            "--state",
            shared_backend.url,
            "--keys",
            str(keys),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env_with_pythonpath(),
        )
        for _ in range(4)
    ]
    results = []
    for process in processes:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode == 0, err.decode()
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert all(result == results[0] for result in results)
    app = make_app(shared_backend.state)
    chains = (await app.list_chains(chain=upload_chain, limit=1000)).items
    assert sorted(c.id for c in chains) == sorted(results[0])
    assert sorted(c.dedup_key or "" for c in chains) == sorted(f"key-{n}" for n in range(keys))
