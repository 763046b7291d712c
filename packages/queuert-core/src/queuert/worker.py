"""The worker: acquires jobs, runs their handlers, reaps expired leases."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from queuert import limits, rates
from queuert.acquisition import Acquisition
from queuert.context import JobContext, check_lease_ms
from queuert.definitions import QueueDef
from queuert.errors import ConfigurationError, UnknownQueueError, ValidationError
from queuert.ids import new_id
from queuert.job import Continuation, Job
from queuert.job_errors import job_error
from queuert.job_runner import Slot, job_extra
from queuert.local_queue import LocalQueue
from queuert.notifications import PendingNotifications
from queuert.outage import Outage
from queuert.ports.notify import ScheduledSignal, Subscription
from queuert.ports.state import Tx
from queuert.records import JobRecord, JobStatus
from queuert.schedules import Scheduler
from queuert.upkeep import Upkeep, check_retention
from queuert.validation import MAX_WORKER_ID, check_many, check_seconds, check_text, show

if TYPE_CHECKING:
    from queuert.client import Queuert

InT = TypeVar("InT")
OutT = TypeVar("OutT")

Handler = Callable[[Job[InT], JobContext[Tx, OutT]], Awaitable[OutT | Continuation]]

log = logging.getLogger("queuert.worker")

__all__ = ["Handler", "Worker", "job_error"]

_RELOOKS = (0.01, 0.05, 0.25, 1.0)
"""Seconds after which a worker woken by a signal, that found nothing, looks again:
the signal may have left before the transaction that scheduled the job committed."""
_MAX_BACKOFF = 30.0
"""Longest wait between tries of a failing acquire or reap (seconds)."""
PREFETCH_PER_SLOT = 20
"""The default ``prefetch``: this many jobs per unit of ``concurrency``."""
_MAX_PREFETCH = 10_000


class Worker(Acquisition[Tx]):
    """Runs handlers for jobs of its queues with up to ``concurrency`` at once.

    Acquires as many eligible jobs as it has free slots, plus room in its local
    queue, in one round trip, wakes on notifications (or polls every
    ``poll_interval`` seconds), reaps expired leases every ``reaper_interval``
    seconds, and stops gracefully on SIGTERM/SIGINT (when run with :meth:`run`)
    or :meth:`stop`.

    ``prefetch`` (default ``20 * concurrency``; ``0`` disables it) is the most jobs
    the worker holds leased in its local queue beyond those running, so that a
    handler's freed slot takes the next job without a round trip. Queues with a
    concurrency limit are prefetched within it (a prefetched job holds its place
    under the limit), per-key limited ones only where the state adapter hands
    places on (see below); rate-limited queues are not prefetched. A prefetched job
    starts in acquisition order; it never waits more than half its lease (it is
    then released back, its attempt refunded); one that waited has its lease
    renewed before its handler runs, so a handler always gets the whole
    ``lease_ms``; one whose chain is cancelled meanwhile never runs; a stop
    releases the unstarted ones at once. The local queue is sized to about
    0.1 s of work from the handlers' mean duration (up to ``prefetch``), so slow
    handlers are not hoarded while another worker idles. See
    :mod:`queuert.local_queue`.

    The worker's own completion of a limited queue's job (its handler returned
    the output) hands the job's place to the queue's next job, or the key's next
    job under a per-key limit, in the same transaction, where the state adapter
    has the ``hand_off`` capability and ``lease_ms`` is 10 s or more (a place is
    handed on only while the finished job's lease has 5 s left): that job,
    leased to this worker, starts in the next free slot without an acquisition.
    """

    def __init__(
        self,
        app: Queuert[Tx],
        *,
        concurrency: int = 10,
        queues: Sequence[QueueDef[Any, Any]] | None = None,
        lease_ms: int = 30_000,
        poll_interval: float = 1.0,
        reaper_interval: float | None = None,
        worker_id: str | None = None,
        shutdown_timeout: float = 30.0,
        retention: timedelta | None = None,
        prefetch: int | None = None,
    ) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValidationError(
                f"concurrency must be a positive integer, got {show(concurrency)}"
            )
        if prefetch is None:
            prefetch = default_prefetch(concurrency)
        elif (
            not isinstance(prefetch, int)
            or isinstance(prefetch, bool)
            or not 0 <= prefetch <= _MAX_PREFETCH
        ):
            raise ValidationError(
                f"prefetch must be an integer from 0 to {_MAX_PREFETCH}, got {show(prefetch)}"
            )
        check_seconds("poll_interval", poll_interval)
        if reaper_interval is not None:
            check_seconds("reaper_interval", reaper_interval)
        if worker_id is not None:
            check_text("worker_id", worker_id, max_length=MAX_WORKER_ID)
        self.app = app
        self.concurrency = concurrency
        self.lease_ms = check_lease_ms(lease_ms)
        self.prefetch = prefetch
        self.poll_interval = float(poll_interval)
        self.reaper_interval = (
            float(reaper_interval)
            if reaper_interval is not None
            else min(max(self.lease_ms / 2000, 0.05), 5.0)
        )
        self.shutdown_timeout = shutdown_timeout
        self.id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{new_id()[-8:]}"
        if queues is not None:
            queues = check_many("queues", queues)
            for queue in queues:
                if not isinstance(queue, QueueDef):
                    raise ValidationError(f"queues must hold QueueDef objects, got {show(queue)}")
        self._queue_filter = None if queues is None else [q.name for q in queues]
        for name in self._queue_filter or ():
            app.queue_def(name)
        self._handlers: dict[str, Callable[..., Awaitable[Any]]] = {}
        # Keyed by (job id, attempt): after a reap this worker may run a job's new
        # attempt while its stale one is still being cancelled.
        self._active: dict[tuple[str, int], Slot] = {}
        self._running = 0
        # Jobs acquired ahead of free slots, and the slots kept for an acquisition in
        # flight (prefetched jobs do not take them).
        self._local = LocalQueue(limit=prefetch, concurrency=concurrency, lease_ms=self.lease_ms)
        self._reserved = 0
        self._background: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()
        self._maybe_more = False
        self._main: asyncio.Task[None] | None = None
        self._stop_task: asyncio.Future[None] | None = None
        self._subscriptions: list[Subscription] = []
        self._log = logging.LoggerAdapter(log, {"worker_id": self.id})
        # Worker record and, with retention, the purge of old chains (off by default).
        self._upkeep = Upkeep(self, check_retention(retention))

        # Woken by a signal whose job may not be visible yet (see _RELOOKS).
        self._signalled = False

    # -- registration ------------------------------------------------------------------

    def handler(
        self, queue: QueueDef[InT, OutT]
    ) -> Callable[[Handler[InT, Tx, OutT]], Handler[InT, Tx, OutT]]:
        """Register the decorated coroutine as the handler of ``queue`` (a chain is its
        entry queue). Raises UnknownQueueError when the queue is not registered
        with the application."""
        if not isinstance(queue, QueueDef) or self.app.queues.get(queue.name) is not queue:
            raise UnknownQueueError(f"queue {show(queue)} is not part of any registered chain")
        if queue.external:
            raise ValidationError(
                f"queue {queue.name!r} is external: the application completes its jobs "
                "with complete_job, no worker runs them"
            )

        def register(fn: Handler[InT, Tx, OutT]) -> Handler[InT, Tx, OutT]:
            if queue.name in self._handlers:
                raise ValidationError(f"queue {queue.name!r} already has a handler")
            self._handlers[queue.name] = fn
            return fn

        return register

    @property
    def queue_names(self) -> list[str]:
        names = self._queue_filter if self._queue_filter is not None else list(self._handlers)
        return [n for n in names if n in self._handlers]

    @property
    def active_jobs(self) -> int:
        return self._running

    # -- running ------------------------------------------------------------------------

    async def start(self) -> None:
        """Check the schema, subscribe to notifications and start working in the
        background. Raises SchemaNotMigratedError when the schema is missing or old,
        ValidationError when no handler is registered."""
        if self._main is not None:
            raise ValidationError("worker already started")
        if not self.queue_names:
            raise ValidationError("worker has no handlers for its queues")
        limits.check_supported(
            self.app.state, limits.split_by_limit(self.app.queues, self.queue_names)[1]
        )
        rates.check_supported(
            self.app.state, rates.split_by_rate(self.app.queues, self.queue_names)[1]
        )
        if self.app.schedules and not self.app.state.capabilities.schedules:
            raise ConfigurationError(
                "the app declares schedules, which its state adapter does not support "
                "(capabilities.schedules)"
            )
        await self.app.state.check_schema()
        await self.app.state.expect_concurrency(jobs=self.concurrency)
        notify = self.app.notify
        if notify is not None:
            self._subscriptions.append(
                await notify.subscribe_job_scheduled(
                    queues=self.queue_names, listener=self._on_scheduled
                )
            )
            self._subscriptions.append(
                await notify.subscribe_lease_lost(job_id=None, listener=self._on_lease_lost)
            )
        await self._upkeep.tick()
        self._main = asyncio.create_task(self._run_loops(), name=f"queuert-worker-{self.id}")
        self._log.info("worker %s started on queues %s", self.id, self.queue_names)

    async def run(self, *, install_signal_handlers: bool = True) -> None:
        """Work until stopped; with ``install_signal_handlers`` SIGTERM and SIGINT
        stop the worker gracefully (within ``shutdown_timeout``)."""
        await self.start()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if install_signal_handlers:
            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, self._signal_stop)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):  # not the main thread / platform
                    pass
        try:
            await self._stopped.wait()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _signal_stop(self) -> None:
        self._log.info("worker %s received a stop signal", self.id)
        self._stop_task = asyncio.ensure_future(self.stop(timeout=self.shutdown_timeout))

    async def __aenter__(self) -> Worker[Tx]:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop(timeout=self.shutdown_timeout)

    async def stop(self, *, timeout: float = 30.0) -> None:
        """Stop acquiring, release the prefetched jobs that have not started (their
        attempt refunded) so that another worker takes them at once, let in-flight
        jobs finish within ``timeout`` seconds meanwhile, then cancel the rest and
        release their leases too. A handler that ignores its cancellation is given
        up on after as long again (between 1 and 5 s): its job is logged and its
        lease left to expire, and stop returns. Idempotent."""
        if self._stopping.is_set():
            await self._stopped.wait()
            return
        self._stopping.set()
        self._wake.set()
        if self._main is not None:
            await asyncio.gather(self._main, return_exceptions=True)
        releasing = asyncio.create_task(self._release_all_prefetched())
        tasks = [slot.task for slot in self._active.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await self._abandon_stuck(pending, grace=min(max(timeout, 1.0), 5.0))
        await releasing
        # Again, now that no job runs: a completion that ended during the stop may
        # have handed its place to a job whose release began after the first pass.
        await self._release_all_prefetched()
        for sub in self._subscriptions:
            await sub.unsubscribe()
        self._subscriptions.clear()
        await self._upkeep.stop()
        self._stopped.set()
        self._log.info("worker %s stopped", self.id)

    # -- notifications -------------------------------------------------------------------------

    async def _on_scheduled(self, signal: ScheduledSignal) -> None:
        if self._stopping.is_set() or self._wake.is_set():
            return
        if self._running >= self.concurrency:
            # Busy: leave the wake budget to idle workers, but look again as soon as
            # a slot frees instead of at the next poll.
            self._maybe_more = True
            return
        notify = self.app.notify
        if notify is not None and await notify.claim_wake(signal=signal):
            self._signalled = not self.app._signals_in_writes
            self._wake.set()

    async def _on_lease_lost(self, job_id: str) -> None:
        await self._drop_lost_prefetched(job_id)
        slots = [
            slot
            for (held_id, _), slot in self._active.items()
            if held_id == job_id and not slot.ctx.finalized
        ]
        if not slots:
            return
        # The signal names the job, not the attempt: this worker may hold a newer
        # lease on the same job (taken after the reap), which must not be cancelled.
        try:
            current = await self.app.state.get_job(tx=None, job_id=job_id)
        except Exception as exc:
            self._log.warning("checking the lease of job %s failed: %s", job_id, exc)
            return
        for slot in slots:
            lease = slot.ctx.lease
            if (
                current is not None
                and current.status is JobStatus.RUNNING
                and current.leased_by == lease.owner
                and current.attempt == lease.attempt
            ):
                continue
            if not slot.ctx.finalized and not slot.task.done():
                slot.ctx.lease_lost = True
                slot.task.cancel()

    # -- loops ------------------------------------------------------------------------------------

    async def _run_loops(self) -> None:
        reaper = asyncio.create_task(self._reap_loop())
        loops = [reaper]
        if self.app.schedules:
            loops.append(asyncio.create_task(Scheduler(self.app).run(self._stopping)))
        try:
            await self._acquire_loop()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)

    async def _acquire_loop(self) -> None:
        # Limited queues are acquired one by one under their limit; a job they hold
        # back is due but not acquirable, so only the other queues tell the idle wait.
        # Rate-limited queues (with the concurrency limit they may declare beside their
        # rate) are acquired under their rate; one held back wakes the loop when its
        # window has room again. Plain queues and queues with a queue-wide limit are
        # prefetched: the database counts a leased job as running, so a limited
        # queue's prefetched jobs hold places under its limit and never exceed it.
        # Per-key limited queues are prefetched only where completions hand their
        # places on (their jobs then pass from job to job of a key without an
        # acquisition); otherwise a worker holding most keys ahead of its slots
        # makes each acquisition pass over them, for less than it saves.
        # Rate-limited queues are not: a rate counts a leased job as started, and
        # its window would be spent early.
        unrated, rated = rates.split_by_rate(self.app.queues, self.queue_names)
        queues, limited = limits.split_by_limit(self.app.queues, unrated)
        ahead = [item for item in limited if self._prefetches(self.app.queues[item[0]])]
        for_slots = [item for item in limited if item not in ahead]
        outage = self._outage("acquiring jobs")
        relooks = len(_RELOOKS)
        local = self._local
        while not self._stopping.is_set():
            self._release_stale()
            self._start_prefetched()
            free = self.concurrency - self._running
            # Prefetch only while there is a backlog (the last acquisition got all it
            # asked for, or a job was scheduled while every slot was busy): a worker
            # that keeps up asks for its free slots alone, as without a local queue.
            room = local.room if (queues or ahead) and self._maybe_more else 0
            timeout = self.poll_interval
            if free > 0 or (room > 0 and local.low):
                self._wake.clear()
                if self._signalled:
                    self._signalled = False
                    relooks = 0
                self._reserved = free
                sent = time.monotonic()
                try:
                    got, window_wait = await self._acquire(
                        queues, ahead, for_slots, rated, free=free, room=room, sent=sent
                    )
                except Exception as exc:
                    self.app.metrics.incr("worker.acquire_attempts")
                    self._reserved = 0
                    self._start_prefetched()
                    await self._pause(outage.failed(exc))
                    continue
                finally:
                    self._reserved = 0
                outage.succeeded()
                self.app.metrics.incr("worker.acquire_attempts")
                self._take(got, sent)
                # Jobs that reached the local queue meanwhile (a completion handed them
                # a place) waited for the slots the acquisition kept.
                self._start_prefetched()
                wanted = free + room
                # Only a worker of limited queues alone waits for freed places: the
                # wait would hold back its plain queues' prefetching too.
                local.acquired(
                    short=len(got) < wanted, room=room, limited=bool(ahead) and not queues
                )
                # A job of a limited queue that ends frees a place under its limit.
                self._maybe_more = len(got) >= wanted or bool(limited)
                if len(got) >= wanted:
                    continue
                if got:
                    relooks = len(_RELOOKS)
                elif queues:
                    timeout = await self._idle_timeout(queues)
                    if relooks < len(_RELOOKS):
                        timeout = min(timeout, _RELOOKS[relooks])
                        relooks += 1
                if window_wait is not None:
                    timeout = min(timeout, window_wait)
            else:
                self._wake.clear()
            if self._stopping.is_set():
                break
            stale_in = local.next_stale_in(time.monotonic())
            if stale_in is not None:
                timeout = min(timeout, stale_in)
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _reap_loop(self) -> None:
        outage = self._outage("reaping expired leases")
        while not self._stopping.is_set():
            delay = self.reaper_interval
            try:
                await self.reap_once()
            except Exception as exc:
                delay = max(delay, outage.failed(exc))
            else:
                outage.succeeded()
            await self._upkeep.tick()
            await self._pause(delay)

    async def reap_once(self, limit: int = 100) -> list[JobRecord]:
        """Return jobs whose lease expired to ``pending`` (or ``failed`` when out of
        attempts) and tell their former holders and idle workers."""
        reaped = await self.app.state.reap_expired_leases(tx=None, limit=limit)
        if not reaped:
            return reaped
        batch = PendingNotifications()
        for record in reaped:
            self.app.metrics.incr("jobs.reaped")
            # Not through self._log: a LoggerAdapter replaces the record's extra with its own.
            log.warning(
                "lease of job %s expired; now %s",
                record.id,
                record.status.value,
                extra=job_extra(record, self.id),
            )
            if record.status is JobStatus.PENDING:
                batch.scheduled[record.queue] += 1
            else:
                batch.completed_chains.append(record.chain_id)
        notify = self.app.notify
        if notify is not None:
            for record in reaped:
                await notify.publish_lease_lost(job_id=record.id)
            await self.app.publish(batch)
        return reaped

    # -- stopping and backing off ---------------------------------------------------------

    async def _abandon_stuck(self, cancelled: set[asyncio.Task[None]], *, grace: float) -> None:
        """Wait up to ``grace`` seconds for cancelled job tasks to end; log those that
        ignore their cancellation and leave them (their leases expire)."""
        _, stuck = await asyncio.wait(cancelled, timeout=grace)
        if not stuck:
            return
        jobs = sorted(
            f"{job_id} (attempt {attempt})"
            for (job_id, attempt), slot in self._active.items()
            if slot.task in stuck
        )
        self.app.metrics.incr("jobs.abandoned", len(stuck))
        self._log.error(
            "worker %s gave up on %d job(s) whose handlers ignore cancellation: %s; "
            "their leases are left to expire",
            self.id,
            len(stuck),
            ", ".join(jobs),
        )

    def _outage(self, what: str) -> Outage:
        cap = max(self.poll_interval, min(_MAX_BACKOFF, self.poll_interval * 32))
        return Outage(self._log, what, base=self.poll_interval, cap=cap)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds`` unless the worker stops meanwhile (wake-ups are ignored)."""
        try:
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        except TimeoutError:
            pass


def default_prefetch(concurrency: int) -> int:
    """The ``prefetch`` of a worker with this ``concurrency`` that names none."""
    return min(PREFETCH_PER_SLOT * concurrency, _MAX_PREFETCH)


def handlers_of(worker: Worker[Any]) -> dict[str, Callable[..., Awaitable[Any]]]:
    """The handlers registered on ``worker`` by queue name (a copy), for tools that
    run the same handlers in a worker configured otherwise (``queuert worker``)."""
    return dict(worker._handlers)
