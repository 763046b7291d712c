"""Databases and processes for the tests of the Django project: each test module
gets a database of its own (an SQLite file, or a PostgreSQL database created and
dropped around it), and every scenario runs in a fresh process, since Django is
configured once per process."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.django.interpreter import django_python

ROOT = Path(__file__).parents[2]
SETTINGS = "tests.django.project.settings"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
COMMAND_TIMEOUT_S = 120


@contextmanager
def project_database(kind: str, directory: Path) -> Iterator[dict[str, str]]:
    """The environment of processes of the test project on a new database of
    ``kind`` (``sqlite`` or ``postgresql``), dropped afterwards."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONPATH": str(ROOT)}
    env.pop("QUEUERT_STATE_URL", None)
    env.pop("QUEUERT_NOTIFY_URL", None)
    if kind == "sqlite":
        env["QUEUERT_TEST_DJANGO_DB"] = f"sqlite:{directory / 'project.db'}"
        # Channels of this database only, on the test server.
        env["QUEUERT_TEST_DJANGO_NOTIFY"] = f"{PG_ADMIN}?channel_prefix=qd{uuid.uuid4().hex[:12]}"
        yield env
        return
    import psycopg

    name = f"queuert_django_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        env["QUEUERT_TEST_DJANGO_DB"] = f"postgresql:{name}"
        yield env
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m django ARGS`` (what ``manage.py ARGS`` runs) in the project."""
    return subprocess.run(
        [django_python(), "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """``python -m django ARGS`` started in the background."""
    return subprocess.Popen(
        [django_python(), "-m", "django", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def migrate(env: dict[str, str]) -> None:
    done = run(env, "migrate", "--no-input")
    assert done.returncode == 0, done.stderr


def scenario(env: dict[str, str], name: str) -> dict[str, Any]:
    """Run a scenario of tests/django/scenarios.py and return what it printed."""
    done = subprocess.run(
        [django_python(), "-m", "tests.django.scenarios", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
