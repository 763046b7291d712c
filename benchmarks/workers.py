"""Starting and steering worker processes (see ``benchmarks.worker_process``)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class WorkerProcess:
    process: asyncio.subprocess.Process
    latest: dict[str, Any] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    _reader: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(
        cls,
        *,
        state_url: str,
        notify_url: str | None,
        scenario: str,
        concurrency: int = 10,
        poll_interval: float = 1.0,
        rss_at: list[int] | None = None,
        uvloop: bool = False,
    ) -> WorkerProcess:
        argv = [
            sys.executable,
            "-m",
            "benchmarks.worker_process",
            "--state-url",
            state_url,
            "--notify-url",
            notify_url or "none",
            "--scenario",
            scenario,
            "--concurrency",
            str(concurrency),
            "--poll-interval",
            str(poll_interval),
        ]
        for count in rss_at or []:
            argv += ["--rss-at", str(count)]
        if uvloop:
            argv.append("--uvloop")
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + (
            os.pathsep + env["PYTHONPATH"] if "PYTHONPATH" in env else ""
        )
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        worker = cls(process)
        ready = await worker._read_line(timeout=60)
        if not ready.get("ready"):
            raise RuntimeError(f"worker process did not get ready: {ready}")
        worker._reader = asyncio.create_task(worker._read_progress())
        return worker

    async def _read_line(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            line = await self.process.stdout.readline()
        if not line:
            code = await self.process.wait()
            raise RuntimeError(f"worker process exited with code {code}")
        data: dict[str, Any] = json.loads(line)
        return data

    async def _read_progress(self) -> None:
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                return
            data = json.loads(line)
            if data.get("final"):
                self.final = data
            self.latest = data

    def _send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")

    def go(self) -> None:
        self._send("go")

    @property
    def count(self) -> int:
        return int(self.latest.get("count", 0))

    async def stop(self, timeout: float = 60) -> dict[str, Any]:
        """Ask the process to stop; returns its last report."""
        if self.process.returncode is None:
            self._send("stop")
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                async with asyncio.timeout(timeout):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            await self._reader
        return self.final or self.latest


async def wait_for_total(
    workers: list[WorkerProcess], total: int, timeout: float, poll: float = 0.02
) -> None:
    """Wait until the workers together report ``total`` committed job ends."""
    async with asyncio.timeout(timeout):
        while sum(w.count for w in workers) < total:
            for w in workers:
                if w.process.returncode is not None:
                    raise RuntimeError(f"a worker process exited with {w.process.returncode}")
            await asyncio.sleep(poll)


def span(reports: list[dict[str, Any]]) -> float:
    """Seconds from the earliest first start to the latest last end of the reports."""
    firsts = [r["first"] for r in reports if r.get("first") is not None]
    lasts = [r["last"] for r in reports if r.get("last") is not None]
    if not firsts or not lasts:
        return float("nan")
    return float(max(lasts) - min(firsts))
