"""Worker processes of a scenario module, run for the length of a block.

Each process runs ``python -m MODULE ARGS...``, must print ``READY`` (one flushed
line) once it is acquiring, and must exit 0 after SIGTERM. Its standard error
goes to ``LOG_DIR/<log prefix>-<i>.log``, whose tail a failure message shows.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from tests.e2e.backends import env_with_pythonpath
from tests.e2e.processes import REPO_ROOT

READY_TIMEOUT_S = 90
EXIT_TIMEOUT_S = 30


@asynccontextmanager
async def worker_processes(
    module: str,
    count: int,
    *,
    args_of: Callable[[int], Sequence[str]],
    log_dir: Path,
    log_prefix: str,
) -> AsyncIterator[None]:
    """Run ``count`` processes of ``module`` (the ``i``-th with ``args_of(i)``) until
    the block exits; each must have printed ``READY`` before the block starts and
    must exit 0 after SIGTERM."""

    def tail(i: int) -> str:
        text = (log_dir / f"{log_prefix}-{i}.log").read_text(errors="replace")
        return "\n".join(text.splitlines()[-30:])

    processes: list[asyncio.subprocess.Process] = []
    logs = []
    try:
        for i in range(count):
            log = (log_dir / f"{log_prefix}-{i}.log").open("wb")
            logs.append(log)
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    module,
                    *args_of(i),
                    cwd=REPO_ROOT,
                    env=env_with_pythonpath(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=log,
                )
            )
        for i, process in enumerate(processes):
            assert process.stdout is not None
            async with asyncio.timeout(READY_TIMEOUT_S):
                line = await process.stdout.readline()
            assert line.strip() == b"READY", f"worker w{i} did not start: {tail(i)}"
        yield
        for process in processes:
            process.terminate()
        for i, process in enumerate(processes):
            async with asyncio.timeout(EXIT_TIMEOUT_S):
                code = await process.wait()
            assert code == 0, f"worker w{i} exited {code}: {tail(i)}"
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for log in logs:
            log.close()
