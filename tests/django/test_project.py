"""The Django integration on SQLite and on PostgreSQL: `manage.py migrate` creates
queuert's tables, chains start exactly when an atomic block commits, workers run
them, and django.tasks tasks run on queuert workers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("django.tasks", reason="Django 6 (Python 3.12): hatch run django:test")

from tests.django.helpers import migrate, project_database, run, scenario


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
    assert seen["lost_exists"] is False
