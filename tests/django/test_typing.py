"""mypy (with queuert_django.mypy_plugin) names the expected input type when
queuert_django.enqueue_job_chain(s) gets the wrong one, as it does for the
asynchronous API (see tests/test_typing.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.django.interpreter import django_python
from tests.test_typing import ROOT, check

CASES = sorted((Path(__file__).parent / "typing_cases").glob("*.py"))


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_mypy_names_the_expected_input(case: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            django_python(),
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--config-file",
            str(Path(__file__).parent / "mypy.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(case),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=300,
    )
    reported: dict[int, str] = {}
    for m in re.finditer(rf"{re.escape(case.name)}:(\d+): error: (.*)", result.stdout):
        reported[int(m.group(1))] = reported.get(int(m.group(1)), "") + m.group(2)
    check(case, reported, result.stdout + result.stderr)
