"""The ``queuert`` command as a user runs it: a subprocess on a real SQLite file and
on a PostgreSQL schema, checking what it prints and its exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import asyncpg
import pytest
import pytest_asyncio

import queuert
from queuert import JobStatus
from tests.cli.cli_app import Chore, Done, approval, chores
from tests.e2e.backends import env_with_pythonpath
from tests.servers import require_postgres
from tests.waiting import eventually

APP = "tests.cli.cli_app:make_worker"


@dataclass
class Store:
    url: str

    def env(self) -> dict[str, str]:
        env = env_with_pythonpath()
        env["QUEUERT_STATE_URL"] = self.url
        env.pop("QUEUERT_APP", None)
        env.pop("QUEUERT_NOTIFY_URL", None)
        return env


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        yield Store(f"sqlite:///{tmp_path / 'jobs.db'}")
        return
    base = require_postgres()
    schema = f"cli_{uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    yield Store(f"{base}{sep}{urlencode({'schema': schema})}")
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


async def queuert_cli(store: Store, *args: str) -> Result:
    """``python -m queuert ARGS`` with the store's URL in the environment."""

    def call() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "queuert", *args],
            env=store.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = await asyncio.to_thread(call)
    return Result(done.returncode, done.stdout, done.stderr)


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.code == 2, result
    assert "Traceback" not in result.err, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


async def open_app(store: Store) -> queuert.Queuert[Any]:
    return await queuert.Queuert.from_url(chains=[chores], state=store.url, notify="none")


async def test_help_shows_examples(store: Store) -> None:
    top = await queuert_cli(store, "--help")
    assert top.code == 0 and "Examples:" in top.out and "worker" in top.out
    for command in ("worker", "migrate", "chains", "chain", "jobs", "retry", "cancel"):
        result = await queuert_cli(store, command, "--help")
        assert result.code == 0 and "Example" in result.out, (command, result)


async def test_errors_are_one_line_with_status_2(store: Store) -> None:
    assert_one_line_error(await queuert_cli(store, "chains"), "migrate")
    assert_one_line_error(
        await queuert_cli(store, "--state", "nosuchscheme://x", "chains"), "nosuchscheme"
    )
    assert_one_line_error(await queuert_cli(store, "--app", "no_such_module:app", "stats"))
    assert_one_line_error(await queuert_cli(store, "worker"), "--app")
    assert (await queuert_cli(store, "migrate")).code == 0
    assert_one_line_error(await queuert_cli(store, "chain", "no-such-id"), "no-such-id")
    assert_one_line_error(await queuert_cli(store, "cancel", "no-such-id"), "no-such-id")
    assert_one_line_error(await queuert_cli(store, "purge", "--older-than", "soon"), "duration")


async def test_migrate_prints_or_applies_the_schema(store: Store) -> None:
    printed = await queuert_cli(store, "migrate", "--sql")
    assert printed.code == 0 and "CREATE TABLE" in printed.out and "workers" in printed.out
    assert_one_line_error(await queuert_cli(store, "stats"), "migrate")  # --sql applied nothing
    applied = await queuert_cli(store, "migrate")
    assert applied.code == 0 and "up to date" in applied.out
    assert (await queuert_cli(store, "--json", "stats")).json()["queues"] == []


async def test_inspect_and_operate_chains(store: Store) -> None:
    assert (await queuert_cli(store, "migrate")).code == 0
    app = await open_app(store)
    try:
        first = await app.enqueue_job_chain(None, chores, Chore("first"))
        second = await app.enqueue_job_chain(None, chores, Chore("second"))
        waiting = await app.enqueue_job_chain(None, chores, Chore("waiting"))
        await app.complete_job(
            None, waiting.id, continue_with=(approval, approval.input_codec.decode('{"name":"w"}'))
        )
    finally:
        await app.close()

    listed = (await queuert_cli(store, "--json", "chains", "--newest")).json()
    assert [c["id"] for c in listed["items"]] == [waiting.id, second.id, first.id]
    table = await queuert_cli(store, "chains")
    assert table.code == 0 and first.id in table.out and "pending" in table.out

    detail = (await queuert_cli(store, "--json", "chain", waiting.id)).json()
    assert [j["queue"] for j in detail["jobs"]] == ["cli-chores", "cli-chores:approval"]
    jobs = (await queuert_cli(store, "--json", "jobs", "--queue", "cli-chores:approval")).json()
    (approval_job,) = jobs["items"]

    why = (await queuert_cli(store, "--json", "explain", first.id)).json()
    assert why["reason"] == "no_worker"
    stats = (await queuert_cli(store, "--json", "stats")).json()
    counts = {q["queue"]: q["counts"] for q in stats["queues"]}
    assert counts["cli-chores"] == {"pending": 2, "completed": 1}

    cancelled = await queuert_cli(store, "cancel", first.id)
    assert cancelled.code == 0 and "cancelled" in cancelled.out
    assert_one_line_error(await queuert_cli(store, "cancel", first.id), "ended")
    retried = await queuert_cli(store, "--json", "retry", first.id)
    assert retried.json()["status"] == "pending"

    # Completing needs the chain's output type: the application's module.
    assert_one_line_error(
        await queuert_cli(store, "complete", approval_job["id"], "--output", '{"name": "x"}'),
        "--app",
    )
    completed = await queuert_cli(
        store, "--app", APP, "complete", approval_job["id"], "--output", '{"name": "ok"}'
    )
    assert completed.code == 0, completed
    assert_one_line_error(
        await queuert_cli(
            store, "--app", APP, "complete", approval_job["id"], "--output", '{"name": "ok"}'
        ),
        "ended",
    )
    purged = await queuert_cli(store, "--json", "purge", "--older-than", "0s")
    assert purged.json() == {"deleted": 1}
    remaining = (await queuert_cli(store, "--json", "chains")).json()
    assert {c["id"] for c in remaining["items"]} == {first.id, second.id}


async def test_worker_runs_chains_and_stops_on_sigterm(store: Store) -> None:
    assert (await queuert_cli(store, "migrate")).code == 0
    app = await open_app(store)
    process = subprocess.Popen(
        [sys.executable, "-m", "queuert", "--app", APP, "worker", "--concurrency", "4"],
        env=store.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        quick = await app.enqueue_job_chain(None, chores, Chore("quick"))
        assert await app.wait_for_chain(quick, timeout=20, poll_interval=0.05) == Done("quick")
        seen = (await queuert_cli(store, "--json", "workers")).json()
        assert len(seen) == 1 and seen[0]["queues"] == ["cli-chores"]

        slow = await app.enqueue_job_chain(None, chores, Chore("slow", seconds=1.0))

        async def running() -> bool:
            chain = await app.get_chain(slow.id)
            return chain is not None and chain.status is JobStatus.RUNNING

        await eventually(running, timeout=20, message="the slow job to start")
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.to_thread(process.communicate, timeout=30)
        assert process.returncode == 0, err
        done = await app.get_chain(slow.id)
        assert done is not None and done.status is JobStatus.COMPLETED  # in-flight finished
        assert "finalized" in err and "Traceback" not in err
        assert (await queuert_cli(store, "--json", "workers")).json() == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        await app.close()


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("queuert")
    assert script.exists(), f"no console script at {script}"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "Examples:" in result.stdout
    assert os.access(script, os.X_OK)
