"""Graphile Worker 0.18 doing the work of the queuert benchmarks, on the same server.

Graphile Worker is a Node.js library, so its figures come from ``graphile/bench.mjs``
run with ``node``, one figure per run. Its packages are pinned by
``graphile/package-lock.json`` and installed with ``npm ci`` (into
``graphile/node_modules``, ignored by git) the first time, and again whenever the
lockfile changes. Without ``node`` and ``npm`` the figures are skipped and the run
says why in one line.

Its schema is installed by Graphile Worker itself (``migrate``). A job counts when
the statement that removes it from the jobs table (Graphile Worker's completion)
has committed: the script watches the table from a connection of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path
from typing import Any

from benchmarks.results import Result, rate

SYSTEM = "graphile"
DIRECTORY = Path(__file__).resolve().parent / "graphile"
SCRIPT = DIRECTORY / "bench.mjs"
INSTALL_TIMEOUT = 600.0
COMMAND_TIMEOUT = 120.0
PERFORMANCE_LOCAL_QUEUE = 500
"""``localQueue.size`` of the run with its performance settings."""


class GraphileError(RuntimeError):
    """``node bench.mjs`` failed; the message holds its standard error."""


async def _command(
    *argv: str, timeout: float, cwd: Path = DIRECTORY, env: dict[str, str] | None = None
) -> str:
    """Run ``argv`` and return its standard output; raise with its standard error."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GraphileError(f"{argv[0]} {argv[1] if len(argv) > 1 else ''} timed out") from None
    if proc.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise GraphileError(f"{' '.join(argv[:2])} exited {proc.returncode}: {' / '.join(tail)}")
    return out.decode()


async def install() -> str | None:
    """Install the pinned packages if needed; ``None`` when the figures can be
    measured, else why not (one line)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        return "skipped graphile: Node.js (node and npm) is not installed"
    stamp = DIRECTORY / "node_modules" / ".package-lock.json"
    lock = DIRECTORY / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        try:
            await _command(
                npm, "ci", "--no-audit", "--no-fund", "--loglevel=error", timeout=INSTALL_TIMEOUT
            )
        except (GraphileError, OSError) as exc:
            return f"skipped graphile: npm ci failed: {exc}"
    return None


async def node_version() -> str:
    return (await _command("node", "--version", timeout=COMMAND_TIMEOUT)).strip()


async def _script(url: str, *args: object, timeout: float = COMMAND_TIMEOUT) -> dict[str, Any]:
    # Graphile Worker's own benchmarks run with NO_LOG_SUCCESS, which skips the
    # formatting of a log line per completed job.
    env = {**os.environ, "NO_LOG_SUCCESS": "1"}
    out = await _command(
        "node", str(SCRIPT), url, *(str(a) for a in args), timeout=timeout, env=env
    )
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        raise GraphileError(f"bench.mjs printed no result: {out[-200:]!r}")
    result: dict[str, Any] = json.loads(lines[-1])
    return result


async def migrate(url: str) -> None:
    await _script(url, "migrate")


async def clear(url: str) -> None:
    """Empty the jobs table."""
    await _script(url, "clear")


async def start_single(url: str, n: int) -> Result:
    """``n`` calls of ``addJob``, one after the other, each its own transaction."""
    found = await _script(url, "single", n)
    return rate(SYSTEM, "start single", found["count"], found["seconds"], "chains/s")


async def start_batched(url: str, n: int, batch: int) -> Result:
    """``addJobs`` with ``batch`` jobs per call (one statement, autocommit)."""
    found = await _script(url, "batched", n, batch)
    return rate(SYSTEM, "start batched", found["count"], found["seconds"], "chains/s", batch=batch)


async def process(
    url: str, n: int, *, concurrency: int, performance: bool, timeout: float
) -> Result:
    """Add ``n`` jobs (setup), then run one worker at ``concurrency`` until every
    job's completion has committed: with Graphile Worker's defaults, or with its
    performance settings (a local queue of 500, completions batched with no delay)."""
    local_queue, batch_delay = (PERFORMANCE_LOCAL_QUEUE, 0) if performance else (-1, -1)
    found = await _script(url, "process", n, concurrency, local_queue, batch_delay, timeout=timeout)
    return rate(
        SYSTEM,
        "process one-job chains",
        found["count"],
        found["seconds"],
        "jobs/s",
        seconds_with_worker_start=found["seconds_with_worker_start"],
        local_queue_size=local_queue if performance else None,
        complete_job_batch_delay=batch_delay if performance else None,
    )
