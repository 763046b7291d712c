"""A type checker must reject wrong continuations, outputs and inputs, and say what
it expected.

``typing_cases/*.py`` marks every line that must fail with ``# E:``; words in
backticks after it must appear in the checker's message for that line (the
expected and the given type). mypy --strict (with ``queuert.mypy_plugin``, as the
project's configuration enables it) and pyright must report errors on exactly
those lines.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
CASES = Path(__file__).parent / "typing_cases"
CASE_FILES = sorted(CASES.glob("*.py"))


def expected_errors(case: Path) -> dict[int, list[str]]:
    """Line number -> key words its message must hold."""
    expected = {}
    for number, line in enumerate(case.read_text().splitlines(), start=1):
        if "# E:" in line:
            expected[number] = re.findall(r"`([^`]+)`", line.split("# E:", 1)[1])
    assert expected, "a typing case without expected errors proves nothing"
    return expected


def check(case: Path, reported: dict[int, str], output: str) -> None:
    expected = expected_errors(case)
    assert set(reported) == set(expected), output
    for number, words in expected.items():
        for word in words:
            assert word in reported[number], f"line {number}: {word!r} not in {reported[number]!r}"


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_mypy_rejects_exactly_the_marked_lines(case: Path, tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(case),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    reported: dict[int, str] = {}
    for m in re.finditer(rf"{re.escape(case.name)}:(\d+): error: (.*)", result.stdout):
        reported[int(m.group(1))] = reported.get(int(m.group(1)), "") + m.group(2)
    check(case, reported, result.stdout + result.stderr)


def pyright_command() -> list[str]:
    pytest.importorskip("pyright", reason="pyright is not installed")
    if shutil.which("node") is None:
        pytest.skip("pyright needs node, which is not installed")
    return [sys.executable, "-m", "pyright", "--pythonpath", sys.executable]


@pytest.mark.parametrize("case", CASE_FILES, ids=lambda p: p.stem)
def test_pyright_rejects_exactly_the_marked_lines(case: Path) -> None:
    result = subprocess.run(
        [*pyright_command(), str(case)],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
        cwd=ROOT,
    )
    # An error's first line names its position; indented lines after it explain it.
    reported: dict[int, str] = {}
    current: int | None = None
    for line in result.stdout.splitlines():
        m = re.match(rf"\s*\S*{re.escape(case.name)}:(\d+):\d+ - error: (.*)", line)
        if m:
            current = int(m.group(1))
            reported[current] = reported.get(current, "") + m.group(2)
        elif current is not None and line[:1].isspace():
            reported[current] += " " + line.strip()
        else:
            current = None
    check(case, reported, result.stdout + result.stderr)
