"""Running one job in a worker's slot: spawning its task, calling its handler,
finalizing it, and recording its failure or release."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic

from queuert.context import JobContext, JobRescheduled
from queuert.definitions import QueueDef
from queuert.errors import InputValidationError, LeaseLostError, NonRetryableError
from queuert.job import NO_BLOCKERS, Continuation, Job
from queuert.job_errors import job_error, retry_delay_ms, unrecordable_error
from queuert.limits import ConcurrencyLimit
from queuert.local_queue import LocalQueue
from queuert.ports.state import Tx
from queuert.records import JobError, JobRecord

if TYPE_CHECKING:
    from queuert.client import Queuert


log = logging.getLogger("queuert.worker")

HAND_OFF_MARGIN_MS = 5_000
"""A completion hands its job's place under a limit on only while the job's lease
has this long left: an acquirer that counts the place free once the lease
expires must not see it until the hand-off's commit is visible."""
_FALLBACK_DELAY_MS = 3_600_000
"""Longest retry delay used when recording an attempt's failure had to fall back to
a minimal error (the computed delay may be what could not be stored)."""


class Slot:
    """One job this worker runs: its context and its task."""

    __slots__ = ("ctx", "holding", "started", "task")

    def __init__(self, ctx: JobContext[Any, Any], task: asyncio.Task[None]) -> None:
        self.ctx = ctx
        self.task = task
        self.started = time.monotonic()
        # True while the handler runs: a concurrency slot is about the application's
        # code, so the worker's own closing write does not hold one.
        self.holding = True


class JobRunner(Generic[Tx]):
    """The per-job part of :class:`~queuert.worker.Worker`: each acquired job runs in
    a task of its own, holding one of the worker's slots while its handler runs."""

    if TYPE_CHECKING:
        app: Queuert[Tx]
        id: str
        lease_ms: int
        concurrency: int
        _local: LocalQueue
        _reserved: int
        _handlers: dict[str, Callable[..., Awaitable[Any]]]
        _active: dict[tuple[str, int], Slot]
        _running: int
        _maybe_more: bool
        _wake: asyncio.Event
        _stopping: asyncio.Event

        def _start_prefetched(self) -> None: ...

        def _handed(self, record: JobRecord, acquired_at: float) -> None: ...

    def _spawn(
        self, record: JobRecord, *, acquired_at: float | None = None, renew: bool = False
    ) -> None:
        """Run ``record``'s handler in a task of its own, holding a slot. Its lease
        counts from ``acquired_at`` (monotonic, before the acquire was sent) when
        known; with ``renew`` (it waited in the local queue) the lease is renewed
        before the handler runs."""
        # Only queues with handlers are acquired, so both lookups succeed.
        ctx: JobContext[Tx, Any] = JobContext(
            self.app, record, self.app.queues[record.queue], self.lease_ms
        )
        if acquired_at is not None:
            ctx.lease_deadline = acquired_at + self.lease_ms / 1000
        handler = self._handlers[record.queue]
        task = asyncio.create_task(
            self._run_job(ctx, handler, renew=renew), name=f"queuert-job-{record.id}"
        )
        self._active[(record.id, record.attempt)] = Slot(ctx, task)
        self._running += 1

    def _hands_off(self) -> bool:
        """Whether completions of limited queues' jobs hand their places on: the state
        adapter can, and the worker's lease is long enough to keep
        :data:`HAND_OFF_MARGIN_MS`."""
        return self.app.state.capabilities.hand_off and self.lease_ms >= 2 * HAND_OFF_MARGIN_MS

    def _prefetches(self, queue: QueueDef[Any, Any]) -> bool:
        """Whether jobs of ``queue`` may be acquired ahead of free slots, into the
        local queue: not under a rate (it counts a leased job as started), and under
        a per-key limit only where completions hand places on."""
        if queue.rate is not None:
            return False
        return queue.limit is None or not queue.limit.per_key or self._hands_off()

    def _hand_off_limit(self, queue: QueueDef[Any, Any]) -> ConcurrencyLimit | None:
        """The concurrency limit under which the completion of a job of ``queue`` hands
        its place to the queue's (key's) next job, or ``None``: the queue has a limit
        and no rate (a rate counts a leased job as started), completions hand places
        on (:meth:`_hands_off`), and the worker is not stopping."""
        limit = queue.limit
        if limit is None or queue.rate is not None or self._stopping.is_set():
            return None
        return limit if self._hands_off() else None

    def _free_slot(self, key: tuple[str, int], *, handing: bool = False) -> None:
        slot = self._active.get(key)
        if slot is None or not slot.holding:
            return
        slot.holding = False
        self._running -= 1
        self._local.ran(time.monotonic() - slot.started)
        # The freed slot takes the next prefetched job without a round trip.
        self._start_prefetched()
        if not self._maybe_more or self._stopping.is_set() or handing:
            return
        # A completion that hands its place on wakes the loop only if no job took it
        # (see _run_job). A place under a queue-wide limit is free only once the
        # job's end is written, when _run_job wakes the loop; waking it now would
        # acquire nothing there.
        limit = self.app.queues[slot.ctx.record.queue].limit
        if limit is not None and not limit.per_key:
            return
        # The loop acquires when a slot is still free, or to refill the local queue
        # once it is down to its low-water mark (not on every started job).
        if self._running + self._reserved < self.concurrency or self._local.low:
            self._wake.set()

    async def _run_job(
        self, ctx: JobContext[Tx, Any], handler: Callable[..., Awaitable[Any]], *, renew: bool
    ) -> None:
        record = ctx.record
        extra = job_extra(record, self.id)
        observer = self.app.observer
        try:
            if renew and not await self._renew_before_start(ctx, extra):
                return
            if observer is None:
                await self._execute(ctx, handler, extra)
            else:
                with observer.attempt(ctx):
                    await self._execute(ctx, handler, extra)
        finally:
            key = (record.id, record.attempt)
            self._free_slot(key)
            self._active.pop(key, None)
            # The job's end is written now, so its place under a limit is free, unless
            # the completion handed it to the next job.
            if (
                self.app.queues[record.queue].limit is not None
                and not self._stopping.is_set()
                and not ctx.handed_off
            ):
                self._local.freed()
                self._wake.set()

    async def _renew_before_start(self, ctx: JobContext[Tx, Any], extra: dict[str, Any]) -> bool:
        """Renew the lease of a job that waited in the local queue, so that its handler
        gets the worker's whole lease. Returns whether the handler may run: not when
        the lease was revoked meanwhile (its chain cancelled), nor when the renewal
        failed (the job is then released, its attempt refunded)."""
        try:
            await ctx.heartbeat()
        except LeaseLostError:
            self.app.metrics.incr("jobs.lease_lost")
            log.warning(
                "prefetched job %s lost its lease before it started; not run",
                ctx.record.id,
                extra=extra,
            )
            return False
        except Exception as exc:
            log.warning(
                "renewing the lease of prefetched job %s failed (%s); releasing it",
                ctx.record.id,
                exc,
                extra=extra,
            )
            await self._release(ctx, extra, unstarted=True)
            return False
        except asyncio.CancelledError:
            # A stop: the handler never started, so the job goes back unchanged.
            if not ctx.lease_lost:
                await self._release(ctx, extra, unstarted=True)
            raise
        return True

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
                limit = self._hand_off_limit(ctx.queue)
                # The next job can start while this completion is on its way.
                self._free_slot((record.id, record.attempt), handing=limit is not None)
                sent = time.monotonic()
                handed = await ctx._complete_handing_off(
                    result, limit=limit, lease_margin_ms=HAND_OFF_MARGIN_MS
                )
                if handed is not None:
                    self._handed(handed, sent)
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

    async def _release(
        self, ctx: JobContext[Tx, Any], extra: dict[str, Any], *, unstarted: bool = False
    ) -> None:
        """Return the job to ``pending``, due now, its attempt refunded, recording that
        the worker stopped; a job whose handler never started keeps its place
        (``scheduled_at``) and its earlier error instead."""
        error: JobError | None
        scheduled_at: datetime | None
        if unstarted:
            error, scheduled_at = ctx.record.error, ctx.record.scheduled_at
        else:
            error = JobError(
                type="WorkerStopped", message=f"worker {self.id} stopped before the job ended"
            )
            scheduled_at = None
        try:
            await self.app.state.reschedule_job(
                tx=None,
                lease=ctx.lease,
                error=error,
                delay_ms=0,
                scheduled_at=scheduled_at,
                refund_attempt=True,
            )
        except Exception as exc:
            log.warning("releasing job %s failed: %s", ctx.record.id, exc, extra=extra)
            return
        self.app.metrics.incr("jobs.released")
        why = "before it started" if unstarted else "on stop"
        log.info("job %s released %s", ctx.record.id, why, extra=extra)
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


def _cancelled_by_worker() -> bool:
    """Whether the current task was asked to stop by a ``cancel()`` (the worker's own
    stop or lost lease) rather than re-raising a CancelledError of something it awaited."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def job_extra(record: JobRecord, worker_id: str | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "job_id": record.id,
        "chain_id": record.chain_id,
        "queue": record.queue,
        "attempt": record.attempt,
    }
    if worker_id is not None:
        extra["worker_id"] = worker_id
    return extra
