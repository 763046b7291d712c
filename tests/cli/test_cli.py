"""The ``queuert`` command as a user runs it: a subprocess on a real SQLite file and
on a PostgreSQL schema, checking what it prints and its exit codes."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import asyncpg
import pytest
from click.testing import CliRunner

import queuert
from queuert import JobStatus
from queuert.cli.commands import cli
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


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store(f"sqlite:///{tmp_path / 'jobs.db'}")
        return
    base = require_postgres()
    schema = f"cli_{uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    yield Store(f"{base}{sep}{urlencode({'schema': schema})}")

    async def drop() -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    asyncio.run(drop())


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


class InProcess:
    """The command run in this process by click's test runner, as :func:`queuert_cli`."""

    def __init__(self, store: Store) -> None:
        self.env = store.env()

    def __call__(self, *args: str) -> Result:
        runner = CliRunner(env=self.env)
        done = runner.invoke(cli, list(args))
        if done.exception is not None and not isinstance(done.exception, SystemExit):
            raise done.exception
        return Result(done.exit_code, done.stdout, done.stderr)


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
    runner = CliRunner()
    for command in cli.commands:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "Example" in result.output, (command, result.output)


async def test_errors_are_one_line_with_status_2(store: Store) -> None:
    assert_one_line_error(await queuert_cli(store, "chains"), "migrate")
    assert_one_line_error(
        await queuert_cli(store, "--state", "nosuchscheme://x", "chains"), "nosuchscheme"
    )
    assert_one_line_error(await queuert_cli(store, "--app", "no_such_module:app", "stats"))
    assert_one_line_error(await queuert_cli(store, "worker"), "--app")


async def test_migrate_prints_or_applies_the_schema(store: Store) -> None:
    printed = await queuert_cli(store, "migrate", "--sql")
    assert printed.code == 0 and "CREATE TABLE" in printed.out and "workers" in printed.out
    assert_one_line_error(await queuert_cli(store, "stats"), "migrate")  # --sql applied nothing
    applied = await queuert_cli(store, "migrate")
    assert applied.code == 0 and "up to date" in applied.out
    assert (await queuert_cli(store, "--json", "stats")).json()["queues"] == []


def test_inspect_and_operate_chains(store: Store) -> None:
    # In this process (click's runner), to keep the many calls quick; the other
    # tests run the command as a subprocess.
    cli_ = InProcess(store)
    assert cli_("migrate").code == 0

    async def start() -> tuple[Any, Any, Any]:
        app = await open_app(store)
        try:
            first = await app.enqueue_job_chain(None, chores, Chore("first"))
            second = await app.enqueue_job_chain(None, chores, Chore("second"))
            waiting = await app.enqueue_job_chain(None, chores, Chore("waiting"))
            next_input = approval.input_codec.decode('{"name": "w"}')
            await app.complete_job(None, waiting.id, continue_with=(approval, next_input))
        finally:
            await app.close()
        return first, second, waiting

    first, second, waiting = asyncio.run(start())

    listed = cli_("--json", "chains", "--newest").json()
    assert [c["id"] for c in listed["items"]] == [waiting.id, second.id, first.id]
    table = cli_("chains")
    assert table.code == 0 and first.id in table.out and "pending" in table.out

    detail = cli_("--json", "chain", waiting.id).json()
    assert [j["queue"] for j in detail["jobs"]] == ["cli-chores", "cli-chores:approval"]
    jobs = cli_("--json", "jobs", "--queue", "cli-chores:approval").json()
    (approval_job,) = jobs["items"]

    why = cli_("--json", "explain", first.id).json()
    assert why["reason"] == "no_worker"
    stats = cli_("--json", "stats").json()
    counts = {q["queue"]: q["counts"] for q in stats["queues"]}
    assert counts["cli-chores"] == {"pending": 2, "completed": 1}

    cancelled = cli_("cancel", first.id)
    assert cancelled.code == 0 and "cancelled" in cancelled.out
    assert_one_line_error(cli_("cancel", first.id), "ended")
    retried = cli_("--json", "retry", first.id)
    assert retried.json()["status"] == "pending"

    # Completing needs the chain's output type: the application's module.
    assert_one_line_error(
        cli_("complete", approval_job["id"], "--output", '{"name": "x"}'),
        "--app",
    )
    complete = ("--app", APP, "complete", approval_job["id"], "--output", '{"name": "ok"}')
    completed = cli_(*complete)
    assert completed.code == 0, completed
    assert_one_line_error(cli_(*complete), "ended")
    purged = cli_("--json", "purge", "--older-than", "0s")
    assert purged.json() == {"deleted": 1}
    remaining = cli_("--json", "chains").json()
    assert {c["id"] for c in remaining["items"]} == {first.id, second.id}


async def test_worker_runs_chains_and_stops_on_sigterm(store: Store) -> None:
    assert (await queuert_cli(store, "migrate")).code == 0
    app = await open_app(store)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "queuert",
        "--app",
        APP,
        "worker",
        "--concurrency",
        "4",
        "--prefetch",
        "8",
        env=store.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
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
        async with asyncio.timeout(30):
            _, err_bytes = await process.communicate()
        err = err_bytes.decode()
        assert process.returncode == 0, err
        done = await app.get_chain(slow.id)
        assert done is not None and done.status is JobStatus.COMPLETED  # in-flight finished
        assert "finalized" in err and "Traceback" not in err
        assert (await queuert_cli(store, "--json", "workers")).json() == []
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await app.close()


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("queuert")
    assert script.exists(), f"no console script at {script}"
    result = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and "Examples:" in result.stdout
    assert os.access(script, os.X_OK)


async def test_worker_on_uvloop_without_the_extra_names_it(store: Store) -> None:
    if importlib.util.find_spec("uvloop") is not None:
        pytest.skip("uvloop is installed here; the hint is for an installation without it")
    assert (await queuert_cli(store, "migrate")).code == 0
    result = await queuert_cli(store, "--app", APP, "worker", "--uvloop")
    assert_one_line_error(result, "--uvloop needs uvloop", "queuert-core[uvloop]")
