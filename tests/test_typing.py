"""A type checker must reject wrong continuations, outputs and inputs.

``typing_cases/pipeline.py`` marks every line that must fail with ``# E:``;
mypy --strict must report errors on exactly those lines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "typing_cases"


@pytest.mark.parametrize("case", sorted(CASES.glob("*.py")), ids=lambda p: p.stem)
def test_checker_rejects_exactly_the_marked_lines(case: Path, tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    expected = {
        number
        for number, line in enumerate(case.read_text().splitlines(), start=1)
        if "# E:" in line
    }
    assert expected, "a typing case without expected errors proves nothing"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--no-error-summary",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            str(case),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    reported = {
        int(m.group(1))
        for m in re.finditer(rf"{re.escape(case.name)}:(\d+): error:", result.stdout)
    }
    assert reported == expected, result.stdout + result.stderr
