"""The commit ceiling of the PostgreSQL server: ``pgbench -N`` on a scratch database.

``pgbench -N`` (TPC-B without the two small-table updates: three writes and a
select per transaction) measures how many durable write transactions per second
the server commits at a given number of clients. The queue's figures are read
against it in the same run. ``pgbench`` ships with the PostgreSQL client packages
(Debian: ``postgresql-client``); without it the figures are skipped and the run
says why in one line.
"""

from __future__ import annotations

import asyncio
import re
import shutil

from benchmarks import pg
from benchmarks.results import Result

SYSTEM = "pgbench"
COMMAND_TIMEOUT = 120.0
_TPS = re.compile(r"^tps = ([0-9.]+)", re.MULTILINE)


def available() -> str | None:
    """``None`` when ``pgbench`` is installed, else why not (one line)."""
    if shutil.which("pgbench") is None:
        return (
            "skipped pgbench: pgbench is not installed (Debian: apt-get install postgresql-client)"
        )
    return None


async def _pgbench(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "pgbench",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), COMMAND_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"pgbench {' '.join(args[:2])} timed out") from None
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench exited {proc.returncode}: {err.decode(errors='replace')}")
    return out.decode()


async def commit_ceiling(clients: int, threads: int, seconds: int) -> Result:
    """``pgbench -N -c clients -j threads -T seconds`` on a database of its own
    (initialised with ``pgbench -i``, scale 1, dropped afterwards)."""
    async with pg.fresh_database("queuert_bench_pgbench") as url:
        await _pgbench("-i", "-q", url)
        out = await _pgbench("-N", "-c", str(clients), "-j", str(threads), "-T", str(seconds), url)
    found = _TPS.search(out)
    if found is None:
        raise RuntimeError(f"pgbench printed no tps: {out[-300:]!r}")
    tps = float(found.group(1))
    return Result(
        SYSTEM,
        commit_metric(clients),
        tps,
        "commits/s",
        count=round(tps * seconds),
        seconds=seconds,
        details={"clients": clients, "threads": threads},
    )


def commit_metric(clients: int) -> str:
    return f"durable commits ({clients} client{'s' if clients > 1 else ''})"
