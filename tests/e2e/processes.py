"""Worker processes for the multi-process scenarios, and the chains they run.

The chains and handlers defined here are the application code of these
scenarios: a test imports them to enqueue (and to run an in-process worker),
and a worker subprocess runs them::

    python -m tests.e2e.processes --state URL [--notify URL] --mode MODE \\
        --concurrency N --lease-ms N --worker-name NAME [--poll-interval S] [--work-ms N]

Each handler claims its job, spends ``--work-ms`` (default 0) in its process
phase, then writes the application's own row (key
:func:`job_key`) in its finalize transaction and continues the chain or ends
it. ``MODE`` is ``normal``, ``hang-in-claim`` (inside the claim transaction,
print ``IN-CLAIM <job id>`` and hang), ``hang-in-process`` (after the claim,
print ``IN-PROCESS <job id>`` and hang), ``hang-in-finalize`` (inside the
finalize transaction, after the application's write, print ``IN-FINALIZE <job
id>`` and hang) or ``hang-after-finalize`` (once the finalize committed, print
``AFTER-FINALIZE <job id>`` and hang).

A worker subprocess prints, one flushed line each, ``READY`` once it is
subscribed and acquiring, then the lines of its mode. It logs to stderr one
line per record with the worker, job, chain, queue and attempt; after each
finalize a handler logs ``finalized``. SIGTERM stops it gracefully (exit 0).

:class:`WorkerProcess` and :class:`WorkerGroup` are the parent's side of this
protocol.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, get_args

import queuert
from queuert import Continuation, EnqueueJob, Job, JobContext, QueueDef, Worker
from tests.e2e.backends import app_write, env_with_pythonpath, schema_of

Mode = Literal[
    "normal", "hang-in-claim", "hang-in-process", "hang-in-finalize", "hang-after-finalize"
]
MODES: tuple[Mode, ...] = get_args(Mode)

REPO_ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("tests.e2e.worker")


# -- the application's chains ------------------------------------------------------------


@dataclass
class Step:
    n: int


@dataclass
class Done:
    n: int
    steps: int


TWO_STEP = queuert.chain("e2e-two-step", input=Step, output=Done)
TWO_STEP_SECOND = TWO_STEP.queue("second", input=Step)

THREE_STEP = queuert.chain("e2e-three-step", input=Step, output=Done)
THREE_STEP_SECOND = THREE_STEP.queue("second", input=Step)
THREE_STEP_THIRD = THREE_STEP.queue("third", input=Step)

CHAINS = [TWO_STEP, THREE_STEP]
STEPS: dict[str, list[QueueDef[Step, Done]]] = {
    TWO_STEP.name: [TWO_STEP, TWO_STEP_SECOND],
    THREE_STEP.name: [THREE_STEP, THREE_STEP_SECOND, THREE_STEP_THIRD],
}


def job_key(chain_id: str, queue: str) -> str:
    """The key of the application's row a job's finalize writes (one job per queue
    per chain in these chains)."""
    return f"{chain_id}/{queue}"


def expected_keys(chain: queuert.ChainDef[Step, Done], chain_ids: Sequence[str]) -> set[str]:
    """Every key the chains write once they all completed."""
    return {job_key(cid, q.name) for cid in chain_ids for q in STEPS[chain.name]}


Announce = Callable[[str, str], None]


def print_line(tag: str, job_id: str) -> None:
    print(f"{tag} {job_id}", flush=True)


async def _forever() -> None:
    await asyncio.Event().wait()


OnError = Callable[[Exception], None]
"""Told of every exception the library raised into a handler's code."""


def _handler(
    queue: QueueDef[Step, Done],
    following: QueueDef[Step, Done] | None,
    steps: int,
    schema: str | None,
    mode: Mode,
    announce: Announce,
    work_ms: int,
    on_error: OnError | None,
) -> Callable[[Job[Step], JobContext[Any, Done]], Awaitable[Done | Continuation]]:
    async def handle(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        try:
            return await steps_of(job, ctx)
        except Exception as exc:
            if on_error is not None:
                on_error(exc)
            raise

    async def steps_of(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        async def read(tx: Any) -> None:
            if mode == "hang-in-claim":
                announce("IN-CLAIM", job.id)
                await _forever()

        await ctx.claim(read)
        if mode == "hang-in-process":
            announce("IN-PROCESS", job.id)
            await _forever()
        if work_ms:
            await asyncio.sleep(work_ms / 1000)  # the process phase's long work

        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done | Continuation:
            await app_write(tx, job_key(job.chain_id, job.queue), schema=schema)
            if mode == "hang-in-finalize":
                announce("IN-FINALIZE", job.id)
                await _forever()
            if following is None:
                return Done(n=job.input.n, steps=steps)
            return await enqueue_job(following, Step(n=job.input.n))

        result = await ctx.finalize(commit)
        log.info("finalized", extra=_fields(job))
        if mode == "hang-after-finalize":
            announce("AFTER-FINALIZE", job.id)
            await _forever()
        return result

    handle.__name__ = f"handle_{queue.name}"
    return handle


def _fields(job: Job[Any]) -> dict[str, Any]:
    return {
        "worker_id": job.record.leased_by,
        "job_id": job.id,
        "chain_id": job.chain_id,
        "queue": job.queue,
        "attempt": job.attempt,
    }


def register_handlers(
    worker: Worker[Any],
    *,
    schema: str | None,
    mode: Mode = "normal",
    announce: Announce = print_line,
    work_ms: int = 0,
    on_error: OnError | None = None,
) -> None:
    """Register the handlers of every step of the chains of :data:`CHAINS` that
    ``worker``'s application has; the application's rows go to ``schema``
    (PostgreSQL; ``None`` for SQLite). Each job spends ``work_ms`` in its process
    phase; ``on_error`` is told of every exception a handler's calls raise."""
    for chain in CHAINS:
        if worker.app.chains.get(chain.name) is not chain:
            continue
        steps = STEPS[chain.name]
        for index, queue in enumerate(steps):
            following = steps[index + 1] if index + 1 < len(steps) else None
            worker.handler(queue)(
                _handler(queue, following, len(steps), schema, mode, announce, work_ms, on_error)
            )


# -- the worker subprocess ------------------------------------------------------------------

LOG_FORMAT = (
    "%(asctime)s %(levelname)s %(name)s worker=%(worker_id)s job=%(job_id)s "
    "chain=%(chain_id)s queue=%(queue)s attempt=%(attempt)s %(message)s"
)
_LOG_FIELDS = ("worker_id", "job_id", "chain_id", "queue", "attempt")


class _JobFieldDefaults(logging.Filter):
    """Gives records logged without job fields placeholders, so one format fits all."""

    def __init__(self, worker_id: str) -> None:
        super().__init__()
        self.worker_id = worker_id

    def filter(self, record: logging.LogRecord) -> bool:
        for name in _LOG_FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, self.worker_id if name == "worker_id" else "-")
        return True


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.processes")
    parser.add_argument("--state", required=True)
    parser.add_argument("--notify", default="none")
    parser.add_argument("--mode", choices=MODES, default="normal")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--lease-ms", type=int, default=30_000)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    parser.add_argument("--worker-name", required=True)
    parser.add_argument("--work-ms", type=int, default=0)
    return parser.parse_args(argv)


async def run_worker_process(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_JobFieldDefaults(args.worker_name))
    logging.basicConfig(level=logging.INFO, handlers=[handler])

    app = await queuert.Queuert.from_url(state=args.state, notify=args.notify, chains=CHAINS)
    worker = app.worker(
        concurrency=args.concurrency,
        lease_ms=args.lease_ms,
        poll_interval=args.poll_interval,
        worker_id=args.worker_name,
        shutdown_timeout=5.0,
    )
    register_handlers(worker, schema=schema_of(args.state), mode=args.mode, work_ms=args.work_ms)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    print("READY", flush=True)
    await stop.wait()
    await worker.stop(timeout=5.0)
    await app.close()
    return 0


# -- the parent's side ------------------------------------------------------------------------

_FINALIZED = re.compile(r" tests\.e2e\.worker worker=(\S+) job=(\S+) .* finalized$")


class WorkerProcess:
    """A worker subprocess: its stdout lines are awaited, its stderr goes to a file."""

    def __init__(
        self, name: str, process: asyncio.subprocess.Process, log_path: Path, log_file: IO[bytes]
    ) -> None:
        self.name = name
        self.process = process
        self.log_path = log_path
        self.killed = False
        self._log_file = log_file

    @classmethod
    async def spawn(
        cls,
        *,
        name: str,
        state: str,
        log_dir: Path,
        notify: str | None = None,
        mode: Mode = "normal",
        concurrency: int = 4,
        lease_ms: int = 30_000,
        poll_interval: float = 1.0,
        work_ms: int = 0,
    ) -> WorkerProcess:
        """Start a worker process (it is not ready yet: :meth:`ready` waits)."""
        log_path = log_dir / f"worker-{name}.log"
        log_file = log_path.open("wb")
        args = [
            "-m",
            "tests.e2e.processes",
            "--state",
            state,
            "--notify",
            notify or "none",
            "--mode",
            mode,
            "--concurrency",
            str(concurrency),
            "--lease-ms",
            str(lease_ms),
            "--poll-interval",
            str(poll_interval),
            "--worker-name",
            name,
            "--work-ms",
            str(work_ms),
        ]
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                *args,
                cwd=REPO_ROOT,
                env=env_with_pythonpath(),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log_file,
            )
        except BaseException:
            log_file.close()
            raise
        return cls(name, process, log_path, log_file)

    async def expect(self, tag: str, *, timeout: float = 30.0) -> str:
        """Wait for the next stdout line starting with ``tag`` and return the rest of
        it. Fails when the process exits or says nothing such within ``timeout``."""
        stdout = self.process.stdout
        assert stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    raw = await stdout.readline()
                    if not raw:
                        await self.process.wait()
                        raise AssertionError(
                            f"worker {self.name} exited ({self.process.returncode}) before "
                            f"printing {tag}:\n{self.log_tail()}"
                        )
                    line = raw.decode().strip()
                    if line == tag or line.startswith(tag + " "):
                        return line[len(tag) :].strip()
        except TimeoutError:
            raise AssertionError(
                f"worker {self.name} did not print {tag} within {timeout}s:\n{self.log_tail()}"
            ) from None

    async def ready(self, *, timeout: float = 30.0) -> None:
        await self.expect("READY", timeout=timeout)

    async def kill(self) -> None:
        """SIGKILL: the process dies at once, whatever it was doing."""
        if self.process.returncode is None:
            self.process.kill()
            self.killed = True
        await self.process.wait()
        self._log_file.close()

    async def stop(self, *, timeout: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL after ``timeout``)."""
        if self.process.returncode is None:
            self.process.terminate()
            try:
                async with asyncio.timeout(timeout):
                    await self.process.wait()
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self._log_file.close()
        code = self.process.returncode
        assert code is not None
        return code

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def finalized_jobs(self) -> Counter[str]:
        """How many times this worker logged each job id as finalized (lines that
        name another worker are ignored)."""
        found: Counter[str] = Counter()
        for line in self.log_text().splitlines():
            match = _FINALIZED.search(line)
            if match is not None and match.group(1) == self.name:
                found[match.group(2)] += 1
        return found


class WorkerGroup:
    """Worker processes that are all stopped when the block exits (killed when it
    raised), so a failing test leaves no process behind. A worker that was not
    killed must exit with status 0."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.workers: list[WorkerProcess] = []

    async def __aenter__(self) -> WorkerGroup:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            for worker in self.workers:
                await worker.kill()
            return
        failed = []
        for worker in self.workers:
            code = await worker.stop()
            if code != 0 and not worker.killed:
                failed.append(f"worker {worker.name} exited {code}:\n{worker.log_tail()}")
        assert not failed, "\n".join(failed)

    async def spawn(self, *, name: str, state: str, **options: Any) -> WorkerProcess:
        worker = await WorkerProcess.spawn(name=name, state=state, log_dir=self.log_dir, **options)
        self.workers.append(worker)
        return worker

    async def spawn_ready(
        self, names: Sequence[str], *, state: str, timeout: float = 30.0, **options: Any
    ) -> list[WorkerProcess]:
        """Start one worker per name and wait until every one of them is READY."""
        workers = [await self.spawn(name=name, state=state, **options) for name in names]
        await asyncio.gather(*(w.ready(timeout=timeout) for w in workers))
        return workers


async def unfinished_chains(app: queuert.Queuert[Any]) -> bool:
    """Whether some chain is not in a terminal status yet."""
    page = await app.list_chains(status=("pending", "running", "blocked"), limit=1)
    return bool(page.items)


async def chain_statuses(app: queuert.Queuert[Any]) -> Counter[str]:
    """How many chains are in each status (reads every page)."""
    statuses: Counter[str] = Counter()
    after: str | None = None
    while True:
        page = await app.list_chains(after=after, limit=1000)
        statuses.update(chain.status.value for chain in page.items)
        if page.next_cursor is None:
            return statuses
        after = page.next_cursor


if __name__ == "__main__":
    sys.exit(asyncio.run(run_worker_process()))
