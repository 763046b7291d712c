"""The Django integration on SQLite and on PostgreSQL: `manage.py migrate` creates
queuert's tables, chains start exactly when an atomic block commits, workers run
them, and django.tasks tasks run on queuert workers."""

from __future__ import annotations

import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.django.helpers import (
    COMMAND_TIMEOUT_S,
    migrate,
    project_database,
    run,
    scenario,
    start,
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """A migrated database for the module's scenarios."""
    with project_database(request.param, tmp_path_factory.mktemp("django")) as env:
        migrate(env)
        yield env


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_manage_py_migrate_creates_queuerts_tables(kind: str, tmp_path: Path) -> None:
    with project_database(kind, tmp_path) as env:
        before = run(env, "queuert", "chains")
        assert before.returncode == 2
        assert "migrate" in before.stderr  # the schema is missing, and the fix is named

        migrate(env)
        after = run(env, "queuert", "--json", "chains")
        assert after.returncode == 0, after.stderr
        assert json.loads(after.stdout)["items"] == []

        # Once more: the adapter's migration finds nothing to do.
        migrate(env)
        shown = run(env, "showmigrations", "queuert_django")
        assert "[X] 0001_schema" in shown.stdout


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_sqlmigrate_prints_the_adapters_ddl(kind: str, tmp_path: Path) -> None:
    with project_database(kind, tmp_path) as env:
        done = run(env, "sqlmigrate", "queuert_django", "0001")
        assert done.returncode == 0, done.stderr
        assert "CREATE TABLE" in done.stdout
        assert "jobs" in done.stdout


def test_a_block_that_raises_leaves_neither_row_nor_chain(project: dict[str, str]) -> None:
    seen = scenario(project, "rolled_back")
    assert seen == {
        "seen_inside": True,
        "rolled_back_chain": False,
        "rolled_back_rows": 0,
        "kept_rows": 1,
        "kept_status": "pending",
    }


def test_a_worker_runs_a_committed_chain(project: dict[str, str]) -> None:
    seen = scenario(project, "worker_runs_chain")
    assert seen["status"] == "completed"
    assert seen["processed"] is True
    assert seen["output"] == {"image_id": seen["image_id"], "name": "cat.png"}


def test_django_tasks_run_on_a_worker(project: dict[str, str]) -> None:
    seen = scenario(project, "tasks_run")
    assert seen["before"] == "READY"
    assert seen["added"] == ["SUCCESSFUL", 5]
    assert seen["renamed"] == ["SUCCESSFUL", "new.png", "new.png"]
    assert seen["failed"] == [True, ["builtins.ValueError"]]
    assert seen["same_task"] is True
    assert seen["deferred"] == [True, "READY"]  # run_after: not due yet
    assert seen["priority"] == 10  # @task(priority=10)
    assert seen["context"] is True  # a task taking its context sees its attempt and id
    assert seen["lost_exists"] is False
    # Sent by the worker around each task it ran (the deferred one is not due).
    backend = "QueuertBackend"
    expected: list[list[Any]] = [
        ["started", backend, "add"],
        ["finished", backend, "add", "SUCCESSFUL", 5],
        ["started", backend, "rename"],
        ["finished", backend, "rename", "SUCCESSFUL", "new.png"],
        ["started", backend, "explode"],
        ["finished", backend, "explode", "FAILED"],
        ["started", backend, "which_attempt"],
        ["finished", backend, "which_attempt", "SUCCESSFUL", seen["signals_attempt"]],
    ]
    assert seen["signals"] == sorted(expected)


def test_cancel_retry_and_unlisted_chains(project: dict[str, str]) -> None:
    seen = scenario(project, "operations")
    assert seen["cancelled"] == "cancelled"
    assert seen["retried"] == "pending"
    assert seen["command"] == "pending"  # call_command("queuert", "chain", id, json=True)
    assert seen["command_error"] == "queuert exited with status 2"
    assert "'not-listed'" in seen["refused"] and "QUEUERT['CHAINS']" in seen["refused"]
    assert seen["unknown"] == "JobNotFoundError"


def test_manage_py_queuert_worker_runs_chains(project: dict[str, str]) -> None:
    worker = start(project, "queuert", "worker", "--concurrency", "2")
    try:
        seen = scenario(project, "upload_and_wait")
        assert seen == {"status": "completed", "processed": True}
    finally:
        worker.send_signal(signal.SIGTERM)  # a graceful stop
        _out, err = worker.communicate(timeout=COMMAND_TIMEOUT_S)
    assert worker.returncode == 0, err[-2000:]


def test_urls_from_database_settings(tmp_path: Path) -> None:
    with project_database("sqlite", tmp_path) as env:
        seen = scenario(env, "urls")
    assert seen == {
        "password": "postgresql://app:p%40ss%3Aw%2Frd@db.internal:6432/shop",
        "socket": "postgresql://app@/shop?host=%2Fvar%2Frun%2Fpostgresql&port=5433",
        "options": "postgresql://app@[::1]/shop?table_prefix=q_&schema=jobs&sslmode=require",
        "sqlite": "sqlite:////srv/app/db.sqlite3",
    }


def test_bad_settings_are_named(tmp_path: Path) -> None:
    with project_database("sqlite", tmp_path) as env:
        seen = scenario(env, "bad_settings")
    assert "unknown key 'DATABSE'" in seen["unknown_key"]
    assert "'jobs'" in seen["missing_alias"] and "DATABASES" in seen["missing_alias"]
    assert "in memory" in seen["memory"]
    assert "QUEUERT['CHAINS']" in seen["bad_chains"]
    assert "must be a dict" in seen["not_a_dict"]
    assert "'mysql'" in seen["mysql"]


def test_command_errors_do_not_show_the_password(tmp_path: Path) -> None:
    with project_database("postgresql", tmp_path) as env:
        env["QUEUERT_TEST_DJANGO_PASSWORD"] = "s3cret-pw"
        env["QUEUERT_TEST_DJANGO_PORT"] = str(free_port())  # nothing listens there
        done = run(env, "queuert", "chains")
    assert done.returncode == 2
    assert done.stderr.startswith("error: ")
    assert len(done.stderr.strip().splitlines()) == 1
    assert "s3cret-pw" not in done.stderr + done.stdout


def test_a_commit_wakes_an_idle_worker(project: dict[str, str]) -> None:
    # PostgreSQL: the write carries a NOTIFY, delivered at commit. SQLite (notifier on
    # PostgreSQL): the signal is sent by transaction.on_commit.
    assert scenario(project, "wakes_on_commit") == {"status": "completed"}


def test_manage_py_check_reports_a_bad_setting(tmp_path: Path) -> None:
    with project_database("sqlite", tmp_path) as env:
        assert run(env, "check").returncode == 0
        env["QUEUERT_TEST_DJANGO_SETTING"] = "broken"
        done = run(env, "check")
    assert done.returncode == 1
    assert "queuert_django.E001" in done.stderr
    assert "'jobs'" in done.stderr
