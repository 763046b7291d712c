"""The Python interpreter the Django project's processes run on.

queuert-django needs Django 6, which needs Python 3.12, while `hatch test` runs
Python 3.11. Every scenario of these tests runs in a process of its own, so the
tests themselves need no Django: they start those processes on an interpreter
that has it. That is this one when it can import ``django.tasks`` (as in
``hatch run django:test``), and otherwise the interpreter of the workspace's
``django`` hatch environment, created on first use (once, under a file lock, as
the test processes of pytest-xdist may ask at the same time). Without a Python
3.12 to create it on, the tests skip with one line, or fail under ``CI=true``.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CREATE_TIMEOUT_S = 600
"""Creating the environment installs Django, psycopg and mypy's stubs."""
FIND_TIMEOUT_S = 60


def has_django_tasks(python: str) -> bool:
    """Whether ``python`` can import ``django.tasks`` (Django 6)."""
    try:
        done = subprocess.run(
            [python, "-c", "import django.tasks"],
            capture_output=True,
            timeout=FIND_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _with_pyenv_312(env: dict[str, str]) -> dict[str, str]:
    """``env`` with a pyenv Python 3.12 made visible to hatch, when one is installed
    but not selected (pyenv keeps versions off PATH unless asked for)."""
    if _runs("python3.12", env):
        return env
    pyenv = shutil.which("pyenv")
    if pyenv is None:
        return env
    try:
        versions = _run([pyenv, "versions", "--bare"], env, FIND_TIMEOUT_S).stdout.split()
        current = _run([pyenv, "version-name"], env, FIND_TIMEOUT_S).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return env
    wanted = [v for v in versions if v == "3.12" or v.startswith("3.12.")]
    if not wanted:
        return env
    chosen = f"{current}:{wanted[-1]}" if current else wanted[-1]
    return {**env, "PYENV_VERSION": chosen}


def _run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``args`` run in the repository with ``env``, its output captured as text.
    Raises OSError or subprocess.TimeoutExpired."""
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _runs(python: str, env: dict[str, str]) -> bool:
    try:
        return (
            subprocess.run(
                [python, "--version"],
                capture_output=True,
                env=env,
                timeout=FIND_TIMEOUT_S,
                check=False,
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _hatch_env_python() -> tuple[str | None, str]:
    """The ``django`` environment's interpreter, created when missing, or ``None``
    and why."""
    hatch = shutil.which("hatch")
    if hatch is None:
        return None, "hatch is not on PATH to create the django environment"
    # The environment of this test run is not the one to create another from.
    env = {k: v for k, v in os.environ.items() if k not in ("HATCH_ENV_ACTIVE", "VIRTUAL_ENV")}
    env = _with_pyenv_312(env)
    lock_path = Path(tempfile.gettempdir()) / f"queuert-django-env-{os.getuid()}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            created = _run([hatch, "env", "create", "django"], env, CREATE_TIMEOUT_S)
            found = _run([hatch, "env", "find", "django"], env, FIND_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"creating the django hatch environment failed: {exc}"
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    if created.returncode != 0:
        last = (created.stderr.strip().splitlines() or ["no output"])[-1]
        return None, f"`hatch env create django` failed (Python 3.12 needed): {last[:200]}"
    python = Path(found.stdout.strip()) / "bin" / "python"
    if not python.exists():
        return None, f"the django environment has no interpreter at {python}"
    return str(python), ""


@cache
def _find() -> tuple[str | None, str]:
    if importlib.util.find_spec("django") is not None and has_django_tasks(sys.executable):
        return sys.executable, ""
    python, why = _hatch_env_python()
    if python is not None and not has_django_tasks(python):
        return None, f"{python} cannot import django.tasks"
    return python, why


def django_python() -> str:
    """The interpreter with Django 6 for the project's processes; skips the calling
    test (fails it under ``CI=true``) when there is none."""
    python, why = _find()
    if python is None:
        message = f"Django 6 tests need a Python 3.12 environment: {why}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return python
