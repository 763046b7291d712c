"""What a benchmark measured, printed as a table and written as JSON."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

RESULTS_DIR = Path(__file__).resolve().parent / "results"


@dataclass
class Result:
    """One measured figure: ``count`` things in ``seconds``, and details."""

    system: str
    metric: str
    value: float
    unit: str
    count: int = 0
    seconds: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("value", "seconds"):
            if isinstance(data[key], float) and not math.isfinite(data[key]):
                data[key] = None
        return data


def rate(system: str, metric: str, count: int, seconds: float, unit: str, **details: Any) -> Result:
    value = count / seconds if seconds > 0 else float("nan")
    return Result(system, metric, value, unit, count, seconds, dict(details))


def failed(system: str, metric: str, unit: str, error: BaseException) -> Result:
    """A figure that could not be measured; the error goes into the details."""
    return Result(system, metric, float("nan"), unit, details={"error": f"{error}"})


def machine() -> dict[str, Any]:
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": psutil.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def source() -> dict[str, Any]:
    """The commit measured and the files changed on top of it (figures move with them)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return ""
        return done.stdout.strip()

    changed = [line[3:] for line in git("status", "--porcelain", "--", "packages").splitlines()]
    return {"commit": git("rev-parse", "HEAD"), "changed_package_files": changed}


def timestamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_json(payload: dict[str, Any], name: str, out_dir: Path | None = None) -> Path:
    """Write ``payload`` to ``<out_dir>/<name>.json`` (default ``benchmarks/results``)."""
    directory = out_dir or RESULTS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    payload = {"written_at": time.time(), "machine": machine(), "source": source(), **payload}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return path


def format_value(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit in ("ms", "MB"):
        return f"{value:,.1f} {unit}"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f} {unit}"


def print_table(
    title: str, rows: list[str], columns: list[str], cells: dict[tuple[str, str], str]
) -> None:
    """Print a grid (``rows`` x ``columns``) with rich."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row, *(cells.get((row, column), "") for column in columns))
    Console(width=max(100, 24 + 20 * len(columns))).print(table)
