"""The deployments the fault scenarios run on, and what every scenario checks.

A :class:`Setup` is a fresh store (a schema of its own on the private
PostgreSQL cluster, or a temp SQLite file) with the application's
``app_writes`` table, and a notifier (PostgreSQL LISTEN/NOTIFY or Redis
pub/sub). The library reaches the database and the notifier through a
:class:`~tests.faults.proxy.FaultProxy` each, so a scenario can cut, delay or
blackhole either; the test's own checks go straight to the servers.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from uuid import uuid4

import queuert
from queuert import QueuertError
from tests.e2e.backends import Backend, open_backend, schema_of
from tests.e2e.processes import TWO_STEP, chain_statuses, expected_keys, register_handlers
from tests.faults.proxy import FaultProxy, fault_proxy
from tests.postgres_server import PostgresCluster
from tests.servers import require_redis
from tests.waiting import eventually

SETUPS = ["postgres-pg-notify", "postgres-redis-notify", "sqlite-redis-notify"]
POSTGRES_SETUPS = SETUPS[:2]

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass
class Setup:
    name: str
    backend: Backend
    """The store, opened directly (not through a proxy): the test's own view."""
    state_url: str
    """How the library reaches the store (through ``state_proxy`` on PostgreSQL)."""
    notify_url: str
    notify_proxy: FaultProxy
    state_proxy: FaultProxy | None = None
    cluster: PostgresCluster | None = None
    apps: list[queuert.Queuert[Any]] = field(default_factory=list)

    @property
    def schema(self) -> str | None:
        return schema_of(self.state_url)

    async def app(
        self, chains: list[queuert.ChainDef[Any, Any]], *, state_url: str | None = None
    ) -> queuert.Queuert[Any]:
        """An application of the library on this setup (closed with the setup)."""
        app = await queuert.Queuert.from_url(
            state=state_url or self.state_url, notify=self.notify_url, chains=chains
        )
        self.apps.append(app)
        return app

    def database_down(self) -> None:
        """The database becomes unreachable: open connections are cut, new ones
        refused (LISTEN/NOTIFY goes with it)."""
        assert self.state_proxy is not None
        self.state_proxy.refuse()
        if self.name == "postgres-pg-notify":
            self.notify_proxy.refuse()

    def database_up(self) -> None:
        assert self.state_proxy is not None
        self.state_proxy.restore()
        self.notify_proxy.restore()


@asynccontextmanager
async def open_setup(
    name: str, tmp_path: Path, cluster: PostgresCluster | None
) -> AsyncIterator[Setup]:
    if name.startswith("postgres"):
        assert cluster is not None
        backend_name = "postgres"
    else:
        backend_name = "sqlite"
    async with (
        open_backend(
            backend_name, tmp_path, postgres_url=cluster.url if cluster is not None else None
        ) as backend,
        AsyncExitStack() as stack,
    ):
        assert backend.url is not None
        state_url = backend.url
        state_proxy = None
        if backend_name == "postgres":
            state_proxy = await stack.enter_async_context(fault_proxy(backend.url))
            state_url = state_proxy.url(backend.url)
        if name.endswith("pg-notify"):
            notify_proxy = await stack.enter_async_context(fault_proxy(backend.url))
            notify_url = notify_proxy.url(backend.url)
        else:
            redis_url = require_redis()
            notify_proxy = await stack.enter_async_context(fault_proxy(redis_url))
            notify_url = f"{notify_proxy.url(redis_url)}?prefix=faults-{uuid4().hex}:"
        setup = Setup(
            name=name,
            backend=backend,
            state_url=state_url,
            notify_url=notify_url,
            notify_proxy=notify_proxy,
            state_proxy=state_proxy,
            cluster=cluster if backend_name == "postgres" else None,
        )
        try:
            yield setup
        finally:
            # A scenario that failed may have left a proxy down: closing must not wait
            # on it.
            if state_proxy is not None:
                state_proxy.restore()
            notify_proxy.restore()
            for app in reversed(setup.apps):
                try:
                    async with asyncio.timeout(10):
                        await app.close()
                except Exception:
                    log.warning("closing an application failed", exc_info=True)


class Observed:
    """Exceptions application code received from the library; only queuert errors
    are allowed."""

    def __init__(self) -> None:
        self.queuert_errors: list[QueuertError] = []
        self.raw: list[BaseException] = []

    def note(self, exc: BaseException) -> None:
        if isinstance(exc, QueuertError):
            self.queuert_errors.append(exc)
        elif isinstance(exc, Exception) and not _raised_by_application(exc):
            self.raw.append(exc)

    async def call(self, call: Callable[[], Awaitable[T]], *, timeout: float = 60) -> T | None:
        """``await call()`` as application code would: a queuert error is noted and
        ``None`` returned, anything else noted and raised. Fails after ``timeout``
        seconds (a call hung on a broken network), naming where it hung."""
        task = asyncio.ensure_future(call())
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            where = _where_tasks_wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise AssertionError(f"a library call did not return within {timeout}s: {where}")
        try:
            return task.result()
        except QueuertError as exc:
            self.note(exc)
            return None
        except Exception as exc:
            self.note(exc)
            raise

    def assert_no_raw_errors(self) -> None:
        assert not self.raw, "raw exceptions reached application code: " + "; ".join(
            f"{type(e).__module__}.{type(e).__qualname__}: {e} (raised through {_library_frame(e)})"
            for e in self.raw[:5]
        )


def _where_tasks_wait() -> str:
    """Where the event loop's tasks wait inside the library (the coroutine chains'
    library frames, innermost last), for a call that hung."""
    seen: dict[str, int] = {}
    for task in asyncio.all_tasks():
        frames: list[str] = []
        coro: Any = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
            if frame is not None and "/src/queuert" in frame.f_code.co_filename:
                code = frame.f_code
                frames.append(f"{Path(code.co_filename).name}:{frame.f_lineno} {code.co_name}")
            coro = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if frames:
            chain = " > ".join(frames)
            seen[chain] = seen.get(chain, 0) + 1
    return "; ".join(f"{n} task(s) in {chain}" for chain, n in seen.items()) or "?"


def _raised_by_application(exc: BaseException) -> bool:
    """Whether ``exc`` was raised by application code the library called back (a
    finalize callback's own statement on its ``tx`` when the server ended the
    connection): the library hands such an error back unchanged, as it must, and
    it is the application's own driver call, not a library error that leaked."""
    frames = traceback.extract_tb(exc.__traceback__)
    library = [i for i, frame in enumerate(frames) if "/src/queuert" in frame.filename]
    if not library:
        return False
    return any("/tests/" in frame.filename for frame in frames[library[-1] + 1 :])


def _library_frame(exc: BaseException) -> str:
    """The innermost frame of the library an exception passed through, to tell
    where a raw driver error escaped."""
    found = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if "/src/queuert" in frame.filename:
            found = f"{Path(frame.filename).name}:{frame.lineno} {frame.name}"
    return found


def measured(what: str, seconds: float) -> None:
    """Log a figure a test's docstring states as a bound (``-o log_cli=true`` shows
    them)."""
    log.info("measured: %s %.2fs", what, seconds)


def start_worker(
    app: queuert.Queuert[Any],
    setup: Setup,
    observed: Observed,
    *,
    name: str,
    lease_ms: int = 3000,
    poll_interval: float = 0.5,
    concurrency: int = 4,
    work_ms: int = 20,
) -> queuert.Worker[Any]:
    """A worker running the two-step chain's handlers (not started)."""
    worker = app.worker(
        concurrency=concurrency,
        lease_ms=lease_ms,
        poll_interval=poll_interval,
        reaper_interval=0.2,
        worker_id=name,
        shutdown_timeout=10.0,
    )
    register_handlers(worker, schema=setup.schema, work_ms=work_ms, on_error=observed.note)
    return worker


async def assert_every_chain_completed_once(
    setup: Setup, observed: Observed, started: list[str], *, timeout: float = 60
) -> None:
    """Every chain in the store (``started`` are those whose start was
    acknowledged) completes, each job's application write committed exactly once,
    and no raw exception reached application code."""
    checker = queuert.Queuert(state=setup.backend.state, chains=[TWO_STEP])

    async def all_ended() -> bool:
        page = await checker.list_chains(status=("pending", "running", "blocked"), limit=1)
        return not page.items

    await eventually(all_ended, timeout=timeout, interval=0.1, message="chains left unfinished")
    statuses = await chain_statuses(checker)
    assert set(statuses) == {"completed"}, f"chains not completed: {statuses}"
    chain_ids: list[str] = []
    after: str | None = None
    while True:
        page = await checker.list_chains(after=after, limit=1000)
        chain_ids += [c.id for c in page.items]
        if page.next_cursor is None:
            break
        after = page.next_cursor
    lost = set(started) - set(chain_ids)
    assert not lost, f"chains whose start was acknowledged are missing: {sorted(lost)[:5]}"
    writes = await setup.backend.app_writes()
    assert set(writes) == expected_keys(TWO_STEP, chain_ids)
    repeated = {key: n for key, n in writes.items() if n != 1}
    assert not repeated, f"application writes repeated: {repeated}"
    observed.assert_no_raw_errors()
