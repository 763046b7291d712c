"""The worker: acquires jobs, runs their handlers, reaps expired leases."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from queuert import limits, rates
from queuert.context import JobContext, JobRescheduled, check_lease_ms
from queuert.definitions import QueueDef
from queuert.errors import (
    ConfigurationError,
    InputValidationError,
    LeaseLostError,
    NonRetryableError,
    UnknownQueueError,
    ValidationError,
)
from queuert.ids import new_id
from queuert.job import NO_BLOCKERS, Continuation, Job
from queuert.job_errors import job_error, retry_delay_ms, unrecordable_error
from queuert.notifications import PendingNotifications
from queuert.outage import Outage
from queuert.ports.notify import ScheduledSignal, Subscription
from queuert.ports.state import Tx
from queuert.records import JobError, JobRecord, JobStatus
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
_FALLBACK_DELAY_MS = 3_600_000
"""Longest retry delay used when recording an attempt's failure had to fall back to
a minimal error (the computed delay may be what could not be stored)."""


class _Slot:
    __slots__ = ("ctx", "holding", "task")

    def __init__(self, ctx: JobContext[Any, Any], task: asyncio.Task[None]) -> None:
        self.ctx = ctx
        self.task = task
        # True while the handler runs: a concurrency slot is about the application's
        # code, so the worker's own closing write does not hold one.
        self.holding = True


class Worker(Generic[Tx]):
    """Runs handlers for jobs of its queues with up to ``concurrency`` at once.

    Acquires as many eligible jobs as it has free slots in one round trip,
    wakes on notifications (or polls every ``poll_interval`` seconds), reaps
    expired leases every ``reaper_interval`` seconds, and stops gracefully on
    SIGTERM/SIGINT (when run with :meth:`run`) or :meth:`stop`.
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
    ) -> None:
        if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
            raise ValidationError(
                f"concurrency must be a positive integer, got {show(concurrency)}"
            )
        check_seconds("poll_interval", poll_interval)
        if reaper_interval is not None:
            check_seconds("reaper_interval", reaper_interval)
        if worker_id is not None:
            check_text("worker_id", worker_id, max_length=MAX_WORKER_ID)
        self.app = app
        self.concurrency = concurrency
        self.lease_ms = check_lease_ms(lease_ms)
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
        self._active: dict[tuple[str, int], _Slot] = {}
        self._running = 0
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
        """Stop acquiring, let in-flight jobs finish within ``timeout`` seconds, then
        cancel the rest and release their leases so another worker can take them at
        once. A handler that ignores its cancellation is given up on after as long
        again (between 1 and 5 s): its job is logged and its lease left to expire,
        and stop returns. Idempotent."""
        if self._stopping.is_set():
            await self._stopped.wait()
            return
        self._stopping.set()
        self._wake.set()
        if self._main is not None:
            await asyncio.gather(self._main, return_exceptions=True)
        tasks = [slot.task for slot in self._active.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await self._abandon_stuck(pending, grace=min(max(timeout, 1.0), 5.0))
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
        state = self.app.state
        # Limited queues are acquired one by one under their limit; a job they hold
        # back is due but not acquirable, so only the other queues tell the idle wait.
        # Rate-limited queues (with the concurrency limit they may declare beside their
        # rate) are acquired under their rate; one held back wakes the loop when its
        # window has room again.
        unrated, rated = rates.split_by_rate(self.app.queues, self.queue_names)
        queues, limited = limits.split_by_limit(self.app.queues, unrated)
        outage = self._outage("acquiring jobs")
        relooks = len(_RELOOKS)
        while not self._stopping.is_set():
            free = self.concurrency - self._running
            timeout = self.poll_interval
            if free > 0:
                self._wake.clear()
                if self._signalled:
                    self._signalled = False
                    relooks = 0
                try:
                    records = await limits.acquire_jobs(
                        state,
                        plain=queues,
                        limited=limited,
                        limit=free,
                        owner=self.id,
                        lease_ms=self.lease_ms,
                    )
                    window_wait = None
                    if rated and len(records) < free:
                        try:
                            got = await rates.acquire_jobs(
                                state,
                                self.app.queues,
                                rated=rated,
                                limit=free - len(records),
                                owner=self.id,
                                lease_ms=self.lease_ms,
                            )
                        except Exception:
                            # The jobs already leased are this worker's to run.
                            for record in records:
                                self._spawn(record)
                            raise
                        records += got.jobs
                        window_wait = got.wait_s
                except Exception as exc:
                    self.app.metrics.incr("worker.acquire_attempts")
                    await self._pause(outage.failed(exc))
                    continue
                outage.succeeded()
                self.app.metrics.incr("worker.acquire_attempts")
                for record in records:
                    self._spawn(record)
                # A job of a limited queue that ends frees a place under its limit.
                self._maybe_more = len(records) == free or bool(limited)
                if len(records) == free:
                    continue
                if records:
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
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _idle_timeout(self, queues: list[str]) -> float:
        try:
            until = await self.app.state.time_until_next_job(tx=None, queues=queues)
        except Exception as exc:
            self._log.warning("reading the next job's time failed: %s", exc)
            return self.poll_interval
        if until is None:
            return self.poll_interval
        return max(0.0, min(self.poll_interval, until))

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
                extra=_job_extra(record, self.id),
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

    # -- running one job -----------------------------------------------------------------------

    def _spawn(self, record: JobRecord) -> None:
        # Only queues with handlers are acquired, so both lookups succeed.
        ctx: JobContext[Tx, Any] = JobContext(
            self.app, record, self.app.queues[record.queue], self.lease_ms
        )
        handler = self._handlers[record.queue]
        task = asyncio.create_task(self._run_job(ctx, handler), name=f"queuert-job-{record.id}")
        self._active[(record.id, record.attempt)] = _Slot(ctx, task)
        self._running += 1

    def _free_slot(self, key: tuple[str, int]) -> None:
        slot = self._active.get(key)
        if slot is None or not slot.holding:
            return
        slot.holding = False
        self._running -= 1
        # A place under a queue-wide limit is free only once the job's end is written,
        # when _run_job wakes the loop; waking it now would acquire nothing there.
        limit = self.app.queues[slot.ctx.record.queue].limit
        held = limit is not None and not limit.per_key
        if self._maybe_more and not self._stopping.is_set() and not held:
            self._wake.set()

    async def _run_job(
        self, ctx: JobContext[Tx, Any], handler: Callable[..., Awaitable[Any]]
    ) -> None:
        record = ctx.record
        extra = _job_extra(record, self.id)
        observer = self.app.observer
        try:
            if observer is None:
                await self._execute(ctx, handler, extra)
            else:
                with observer.attempt(ctx):
                    await self._execute(ctx, handler, extra)
        finally:
            key = (record.id, record.attempt)
            self._free_slot(key)
            self._active.pop(key, None)
            # The job's end is written now, so its place under a limit is free.
            if self.app.queues[record.queue].limit is not None and not self._stopping.is_set():
                self._wake.set()

    async def _execute(
        self,
        ctx: JobContext[Tx, Any],
        handler: Callable[..., Awaitable[Any]],
        extra: dict[str, Any],
    ) -> None:
        record = ctx.record
        metrics = self.app.metrics
        if log.isEnabledFor(logging.DEBUG):
            log.debug("job %s started (attempt %d)", record.id, record.attempt, extra=extra)
        try:
            try:
                job_input = ctx.queue.input_codec.decode(record.input)
            except Exception as exc:
                raise NonRetryableError(
                    f"stored input does not match the queue's type: {exc}"
                ) from exc
            # Only a job created with blockers costs the read (its acquired row says so).
            blockers = await ctx.blockers() if record.has_blockers else NO_BLOCKERS
            job: Job[Any] = Job(
                id=record.id,
                chain_id=record.chain_id,
                chain_name=record.chain_name,
                queue=record.queue,
                attempt=record.attempt,
                max_attempts=record.max_attempts,
                input=job_input,
                created_at=record.created_at,
                scheduled_at=record.scheduled_at,
                record=record,
                blockers=blockers,
            )
            result = await handler(job, ctx)
            if not ctx.finalized:
                # A handler that returns an output without finalizing completes the job with it.
                if isinstance(result, Continuation):
                    raise InputValidationError(
                        "the handler returned a Continuation that was not committed by finalize"
                    )
                # The next job can start while this completion is on its way.
                self._free_slot((record.id, record.attempt))
                await ctx.complete(result)
        except JobRescheduled:
            metrics.incr("jobs.rescheduled")
            log.info("job %s rescheduled by its handler", record.id, extra=extra)
        except LeaseLostError:
            metrics.incr("jobs.lease_lost")
            log.warning("job %s lost its lease; its attempt is abandoned", record.id, extra=extra)
        except asyncio.CancelledError as exc:
            if ctx.lease_lost:
                metrics.incr("jobs.lease_lost")
                log.warning("job %s lost its lease and was cancelled", record.id, extra=extra)
                return
            if not _cancelled_by_worker():
                # Something the handler awaited was cancelled by someone else: the
                # handler's own failure, not a stop.
                await self._handler_raised(ctx, exc, extra)
            else:
                if not ctx.finalized:
                    await self._release(ctx, extra)
                raise
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:
            await self._handler_raised(ctx, exc, extra)
        else:
            metrics.incr("jobs.finalized")
            # One INFO line per job end: what `queuert worker` shows.
            if log.isEnabledFor(logging.INFO):
                log.info("job %s finalized", record.id, extra=extra)
        await self.app.publish(ctx.notifications)

    async def _handler_raised(
        self, ctx: JobContext[Tx, Any], exc: BaseException, extra: dict[str, Any]
    ) -> None:
        if ctx.finalized:
            log.error(
                "job %s raised after it was finalized: %s",
                ctx.record.id,
                job_error(exc).message,
                extra=extra,
            )
        else:
            await self._handle_failure(ctx, exc, extra)

    async def _release(self, ctx: JobContext[Tx, Any], extra: dict[str, Any]) -> None:
        error = JobError(
            type="WorkerStopped", message=f"worker {self.id} stopped before the job ended"
        )
        try:
            await self.app.state.reschedule_job(
                tx=None, lease=ctx.lease, error=error, delay_ms=0, refund_attempt=True
            )
        except Exception as exc:
            log.warning("releasing job %s failed: %s", ctx.record.id, exc, extra=extra)
            return
        self.app.metrics.incr("jobs.released")
        log.info("job %s released on stop", ctx.record.id, extra=extra)
        ctx.notifications.scheduled[ctx.record.queue] += 1
        await self.app.publish(ctx.notifications)

    async def _handle_failure(
        self, ctx: JobContext[Tx, Any], exc: BaseException, extra: dict[str, Any]
    ) -> None:
        record = ctx.record
        final = isinstance(exc, NonRetryableError) or record.attempt >= record.max_attempts
        delay = 0 if final else retry_delay_ms(ctx.queue.retry, record.attempt)
        try:
            await self._record_failure(ctx, job_error(exc), final, delay, extra)
            return
        except LeaseLostError:
            log.warning("job %s failed after losing its lease", record.id, extra=extra)
            return
        except Exception as write_exc:
            log.error(
                "recording the failure of job %s failed (%s); recording a minimal error instead",
                record.id,
                job_error(write_exc).message,
                extra=extra,
            )
            minimal = unrecordable_error(exc, write_exc)
        try:
            await self._record_failure(ctx, minimal, final, min(delay, _FALLBACK_DELAY_MS), extra)
        except LeaseLostError:
            log.warning("job %s failed after losing its lease", record.id, extra=extra)
        except Exception as write_exc:
            # The lease will expire and the reaper will retry the job.
            log.error(
                "recording the failure of job %s failed again: %s",
                record.id,
                job_error(write_exc).message,
                extra=extra,
            )

    async def _record_failure(
        self,
        ctx: JobContext[Tx, Any],
        error: JobError,
        final: bool,
        delay: int,
        extra: dict[str, Any],
    ) -> None:
        record = ctx.record
        state = self.app.state
        if final:
            await state.fail_job(tx=None, lease=ctx.lease, error=error)
            self.app.metrics.incr("jobs.failed")
            ctx.notifications.completed_chains.append(record.chain_id)
            log.error(
                "job %s failed for good after attempt %d: %s",
                record.id,
                record.attempt,
                error.message,
                extra=extra,
            )
        else:
            await state.reschedule_job(tx=None, lease=ctx.lease, error=error, delay_ms=delay)
            self.app.metrics.incr("jobs.retried")
            log.warning(
                "job %s attempt %d failed (%s: %s); retry in %d ms",
                record.id,
                record.attempt,
                error.type,
                error.message,
                delay,
                extra=extra,
            )

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


def _cancelled_by_worker() -> bool:
    """Whether the current task was asked to stop by a ``cancel()`` (the worker's own
    stop or lost lease) rather than re-raising a CancelledError of something it awaited."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def handlers_of(worker: Worker[Any]) -> dict[str, Callable[..., Awaitable[Any]]]:
    """The handlers registered on ``worker`` by queue name (a copy), for tools that
    run the same handlers in a worker configured otherwise (``queuert worker``)."""
    return dict(worker._handlers)


def _job_extra(record: JobRecord, worker_id: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "job_id": record.id,
        "chain_id": record.chain_id,
        "queue": record.queue,
        "attempt": record.attempt,
    }
    if worker_id is not None:
        extra["worker_id"] = worker_id
    return extra
