"""The handler's view of its job's phases: claim, heartbeat, finalize."""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar

from queuert.blockers import Blockers, blocker_ids
from queuert.definitions import QueueDef
from queuert.errors import (
    ContinuationError,
    ForeignQueueError,
    LeaseError,
    LeaseLostError,
    QueuertError,
    TransactionClosedError,
    ValidationError,
)
from queuert.ids import new_id
from queuert.job import Continuation
from queuert.limit_keys import job_key
from queuert.notifications import PendingNotifications, pending_notifications
from queuert.observer import Phase
from queuert.ports.state import Tx
from queuert.records import JobRecord, JobStatus, Lease, NewJob
from queuert.validation import check_duration_ms, check_time, show
from queuert.validation import delay_ms as checked_delay_ms

if TYPE_CHECKING:
    from queuert.client import ChainHandle, Queuert
    from queuert.limits import ConcurrencyLimit

OutT = TypeVar("OutT")
StepInT = TypeVar("StepInT")
R = TypeVar("R")

log = logging.getLogger("queuert.worker")


class JobRescheduled(QueuertError):
    """Raised by :meth:`JobContext.reschedule` to end the handler; the worker expects it."""


class EnqueueJob(Protocol[OutT]):
    """``enqueue_job(queue, input)``: continue the chain with a job on ``queue``.

    The input must match the queue's input type and the queue must belong to
    this chain (checked statically through ``OutT`` and at run time). The job is
    due now, after ``delay`` or at ``start_at`` (validated as for
    ``enqueue_job_chain``); with ``blockers`` it waits for those chains first
    (see :mod:`queuert.blockers`).
    """

    async def __call__(
        self,
        queue: QueueDef[StepInT, OutT],
        input: StepInT,
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        blockers: Sequence[ChainHandle[Any]] | None = None,
    ) -> Continuation: ...


def check_lease_ms(value: object, name: str = "lease_ms") -> int:
    """``value`` if it is an integer of milliseconds within ``1..MAX_DURATION_MS``;
    raises LeaseError otherwise."""
    return check_duration_ms(name, value, error=LeaseError)


class _Enqueuer(Generic[OutT]):
    """The ``enqueue_job`` handed to a finalize callback: validates and records at most
    one continuation; the worker writes it when the callback returns."""

    def __init__(self, ctx: JobContext[Any, OutT]) -> None:
        self._ctx = ctx
        self.next_job: NewJob | None = None
        self.continuation: Continuation | None = None
        self.blocker_chain_ids: list[str] | None = None

    async def __call__(
        self,
        queue: QueueDef[StepInT, OutT],
        input: StepInT,
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        blockers: Sequence[ChainHandle[Any]] | None = None,
    ) -> Continuation:
        if self.next_job is not None:
            raise ContinuationError(
                f"enqueue_job was already called in this finalize (for job {self.next_job.id}); "
                f"a job continues its chain at most once, not again with {show(queue)}"
            )
        next_job = self._ctx.build_next_job(queue, input)
        if delay is not None or start_at is not None:
            from queuert.client import _check_schedule

            delay_ms, scheduled_at = _check_schedule(delay, start_at)
            next_job = replace(next_job, delay_ms=delay_ms, scheduled_at=scheduled_at)
        if blockers is not None:
            self.blocker_chain_ids = blocker_ids(blockers, self._ctx._app.chains)
        self.next_job = next_job
        self.continuation = Continuation(job_id=self.next_job.id, queue=self.next_job.queue)
        return self.continuation


class JobContext(Generic[Tx, OutT]):
    """Gives a handler the phases of its job (DESIGN section 3).

    - :meth:`claim` runs a callback in a transaction that verifies the lease.
    - :meth:`heartbeat` / :meth:`with_heartbeat` keep the lease during long work;
      a lost lease raises :class:`~queuert.errors.LeaseLostError`.
    - :meth:`finalize` commits the caller's writes with the job's completion (or
      its continuation) in one transaction, exactly once per job.
    """

    def __init__(
        self, app: Queuert[Tx], record: JobRecord, queue: QueueDef[Any, OutT], lease_ms: int
    ) -> None:
        self._app = app
        self.record = record
        self.queue = queue
        self.chain = app.chains[queue.chain_name]
        self.lease: Lease = record.lease
        self.lease_ms = lease_ms
        self.finalized = False
        self.lease_lost = False
        # Whether the job's completion handed its place under a limit to another job.
        self.handed_off = False
        self.notifications = PendingNotifications()
        # When the lease surely expires (monotonic clock), counted from before the
        # request that set it was sent: the context is made after the acquire.
        self.lease_deadline = time.monotonic() + lease_ms / 1000

    # -- helpers -----------------------------------------------------------------

    def build_next_job(self, queue: QueueDef[StepInT, OutT], input: StepInT) -> NewJob:
        if not isinstance(queue, QueueDef) or self._app.queues.get(queue.name) is not queue:
            raise ValidationError(f"queue {show(queue)} is not part of any registered chain")
        if queue.chain_name != self.chain.name:
            raise ForeignQueueError(
                f"job {self.record.id} of chain {self.chain.name!r} cannot continue with "
                f"queue {queue.name!r} of chain {queue.chain_name!r}"
            )
        return NewJob(
            id=new_id(),
            chain_id=self.record.chain_id,
            chain_name=self.record.chain_name,
            queue=queue.name,
            position=self.record.position + 1,
            input=queue.input_codec.encode(input),
            max_attempts=queue.retry.max_attempts,
            priority=queue.priority,
            concurrency_key=job_key(queue, input),
        )

    def _ensure_open(self) -> None:
        if self.lease_lost:
            raise LeaseLostError(self.record.id)
        if self.finalized:
            raise ContinuationError(f"job {self.record.id} is already finalized")

    def _phase(self, name: Phase) -> AbstractContextManager[None]:
        """The observer's view of this attempt's ``name`` transaction, opened around it
        (both phases lock the job, so the transaction alone cannot tell which it is)."""
        observer = self._app.observer
        return nullcontext() if observer is None else observer.phase(self.lease, name)

    def _lost(self) -> LeaseLostError:
        self.lease_lost = True
        return LeaseLostError(self.record.id)

    async def blockers(self, *, tx: Tx | None = None) -> Blockers:
        """The chains this job waited on (``blockers=`` when it was enqueued), in the
        order they were given, with their outputs; empty when it had none. Read
        ``blockers[i].output(chain_def)`` or ``blockers.output_of(handle)`` for an
        output typed as the chain's. Read in ``tx`` when given (a claim's or a
        finalize's), else in a transaction of its own."""
        records = await self._app.state.get_blockers(tx=tx, job_id=self.record.id)
        return Blockers(records)

    # -- claim -----------------------------------------------------------------------

    async def claim(self, read: Callable[[Tx], Awaitable[R]]) -> R:
        """Run ``read(tx)`` in a transaction that first verifies the lease and locks
        the job, as finalize does; returns what ``read`` returns. Raises
        LeaseLostError when the lease is gone. The job cannot be reaped or taken over
        while the transaction is open, so whatever ``read`` writes commits only
        while this attempt still holds the job (the lease may run out meanwhile;
        the reaper waits for the commit)."""
        self._ensure_open()
        try:
            with self._phase("claim"):
                async with self._app.state.leased_transaction(lease=self.lease, lock=True) as tx:
                    return await read(tx)
        except LeaseLostError:
            raise self._lost() from None

    # -- process ------------------------------------------------------------------------

    async def heartbeat(self, *, lease_ms: int | None = None) -> datetime:
        """Extend the lease to ``lease_ms`` from now (default: the worker's lease) and
        return the new expiry. Raises LeaseLostError when the lease is gone and
        LeaseError for a zero or negative ``lease_ms``."""
        ms = self.lease_ms if lease_ms is None else check_lease_ms(lease_ms)
        self._ensure_open()
        sent = time.monotonic()
        try:
            expiry = await self._app.state.renew_lease(tx=None, lease=self.lease, lease_ms=ms)
        except LeaseLostError:
            raise self._lost() from None
        self.lease_deadline = sent + ms / 1000
        return expiry

    async def with_heartbeat(
        self, work: Awaitable[R], *, interval_ms: int, lease_ms: int | None = None
    ) -> R:
        """Await ``work`` while renewing the lease every ``interval_ms``. When the lease
        is lost, ``work`` is cancelled and LeaseLostError raised.

        A renewal that fails otherwise (the database briefly unreachable or busy) is
        retried, ``work`` going on, until shortly before the lease's known expiry
        (a tenth of ``lease_ms`` before it, at most 2 s); reaching that point cancels
        ``work`` and raises LeaseLostError too, the job being left to the reaper."""
        try:
            interval = check_lease_ms(interval_ms, "interval_ms")
            ms = self.lease_ms if lease_ms is None else check_lease_ms(lease_ms)
            if interval >= ms:
                raise LeaseError(f"interval_ms ({interval}) must be shorter than lease_ms ({ms})")
        except LeaseError:
            # The caller handed its coroutine over; close it so it is not left never awaited.
            if inspect.iscoroutine(work):
                work.close()
            raise
        task = asyncio.ensure_future(work)
        try:
            while True:
                if await self._renew_during(task, ms, interval / 1000):
                    return task.result()
                done, _ = await asyncio.wait({task}, timeout=interval / 1000)
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _renew_during(self, task: asyncio.Future[Any], ms: int, interval: float) -> bool:
        """Renew the lease for ``ms``, retrying failures other than a lost lease until
        shortly before its known expiry while ``task`` runs. Returns whether ``task``
        finished first; raises LeaseLostError when the lease is lost or runs out."""
        margin = min(ms / 10_000, 2.0)
        failures = 0
        while True:
            remaining = self.lease_deadline - margin - time.monotonic()
            if remaining <= 0:
                raise LeaseLostError(
                    self.record.id,
                    f"the lease of job {self.record.id!r} is about to expire after "
                    f"{failures} failed renewals",
                )
            try:
                # Not cut short at the known expiry: a renewal that arrives late still
                # holds the job unless it was reaped meanwhile (then it raises lost).
                await self.heartbeat(lease_ms=ms)
            except (LeaseLostError, ValidationError):
                raise
            except Exception as exc:
                failures += 1
                log.warning(
                    "renewing the lease of job %s failed (%s: %s); retrying for %.1f s more",
                    self.record.id,
                    type(exc).__name__,
                    exc,
                    remaining,
                )
                done, _ = await asyncio.wait({task}, timeout=min(interval, 1.0, remaining))
                if done:
                    return True
                continue
            if failures:
                log.info("renewing the lease of job %s works again", self.record.id)
            return False

    # -- finalize ------------------------------------------------------------------------

    async def finalize(self, commit: Callable[[Tx, EnqueueJob[OutT]], Awaitable[R]]) -> R:
        """Run ``commit(tx, enqueue_job)`` in one transaction with the job's end:
        the lease is verified and locked first; when ``commit`` returns an output
        the job and chain complete with it, when it returns the continuation made
        by ``enqueue_job`` the next job is created. All of it commits together or
        none of it does. Returns what ``commit`` returned, typed as it is: a handler
        that only completes is annotated with the chain's output type alone, and the
        handler's return type (``OutT | Continuation`` at most) is what a type checker
        holds the output to. Raises LeaseLostError (nothing committed) when the lease
        is gone, ContinuationError when ``enqueue_job`` is misused, InputValidationError
        when the output does not match the chain's output type.

        Chains ``commit`` starts with ``tx`` (fan-out) commit with the job's end;
        the workers they wake are told once that commit is done."""
        self._ensure_open()
        enqueue = _Enqueuer(self)
        state = self._app.state
        # Signals of what commit starts wait for the commit, as in Queuert.with_notify.
        started = PendingNotifications()
        token = pending_notifications.set(started)
        try:
            with self._phase("finalize"):
                async with state.leased_transaction(lease=self.lease, lock=True) as tx:
                    result = await commit(tx, enqueue)
                    await self._write_end(tx, result, enqueue)
        except LeaseLostError:
            raise self._lost() from None
        finally:
            pending_notifications.reset(token)
        self.finalized = True
        self.notifications.merge(started)
        return result

    async def complete(self, output: OutT) -> OutT:
        """End the job and its chain with ``output`` (finalize with no callback)."""
        await self._complete_handing_off(output, limit=None, lease_margin_ms=0)
        return output

    async def _complete_handing_off(
        self, output: OutT, *, limit: ConcurrencyLimit | None, lease_margin_ms: int
    ) -> JobRecord | None:
        """:meth:`complete`; with a ``limit`` (the worker's own completion of a limited
        queue's job, the state adapter having the ``hand_off`` capability), also
        hand the job's place under it to the next job. Returns that job, leased to
        this worker for ``lease_ms``, or ``None``."""
        self._ensure_open()
        text = self.chain.output_codec.encode(output)
        state = self._app.state
        handed: JobRecord | None = None
        try:
            if limit is None:
                record = await state.complete_job(tx=None, lease=self.lease, output=text)
            else:
                record, handed = await state.complete_job_and_hand_off(
                    lease=self.lease,
                    output=text,
                    lease_ms=self.lease_ms,
                    concurrency_limit=limit.limit,
                    per_key=limit.per_key,
                    lease_margin_ms=lease_margin_ms,
                )
        except LeaseLostError:
            raise self._lost() from None
        self.finalized = True
        self.handed_off = handed is not None
        self._completed(record)
        return handed

    def _completed(self, record: JobRecord | None) -> None:
        """Signals for the chain's completion: the chain's own, and a wake-up for the
        workers of each job the completion unblocked."""
        self.notifications.completed_chains.append(self.record.chain_id)
        if record is not None:
            for queue in record.unblocked_queues:
                self.notifications.scheduled[queue] += 1

    async def continue_with(self, queue: QueueDef[StepInT, OutT], input: StepInT) -> Continuation:
        """Continue the chain with a job on ``queue`` (finalize with no callback)."""
        self._ensure_open()
        next_job = self.build_next_job(queue, input)
        try:
            await self._app.state.continue_job(tx=None, lease=self.lease, next_job=next_job)
        except LeaseLostError:
            raise self._lost() from None
        self.finalized = True
        self.notifications.scheduled[next_job.queue] += 1
        return Continuation(job_id=next_job.id, queue=next_job.queue)

    async def _write_end(self, tx: Tx, result: object, enqueue: _Enqueuer[OutT]) -> None:
        state = self._app.state
        if not await state.is_transaction_open(tx=tx):
            raise TransactionClosedError(
                f"the finalize callback of job {self.record.id!r} ended its transaction "
                "(a COMMIT or ROLLBACK sent through tx, or its connection closed); the "
                "job's end was not written. Let finalize commit the transaction."
            )
        if isinstance(result, Continuation):
            if enqueue.next_job is None or result != enqueue.continuation:
                raise ContinuationError(
                    "finalize returned a Continuation that its own enqueue_job did not make"
                )
            if enqueue.blocker_chain_ids is not None:
                created = await state.continue_blocked_job(
                    tx=tx,
                    lease=self.lease,
                    next_job=enqueue.next_job,
                    blocker_chain_ids=enqueue.blocker_chain_ids,
                    run_on_blocker_failure=self.chain.on_blocker_failure == "run",
                )
                if created.status.is_terminal:
                    self.notifications.completed_chains.append(self.record.chain_id)
                elif created.status is JobStatus.PENDING:
                    self.notifications.scheduled[created.queue] += 1
                return
            await state.continue_locked_job(tx=tx, lease=self.lease, next_job=enqueue.next_job)
            self.notifications.scheduled[enqueue.next_job.queue] += 1
            return
        if enqueue.next_job is not None:
            raise ContinuationError(
                f"finalize called enqueue_job but returned {show(result)}; return the continuation "
                "that enqueue_job gave"
            )
        text = self.chain.output_codec.encode(result)
        self._completed(await state.complete_locked_job(tx=tx, lease=self.lease, output=text))

    # -- reschedule ------------------------------------------------------------------------

    async def reschedule(
        self, *, after: timedelta | None = None, at: datetime | None = None
    ) -> NoReturn:
        """Put the job back to ``pending`` until ``at`` (or ``after`` from now) without
        counting this attempt, and end the handler (raises an exception the worker
        expects; do not catch it)."""
        if (after is None) == (at is None):
            raise ValidationError("reschedule takes exactly one of after= or at=")
        delay_ms = 0 if after is None else checked_delay_ms("after", after)
        at = None if at is None else check_time("at", at)
        self._ensure_open()
        try:
            await self._app.state.reschedule_job(
                tx=None,
                lease=self.lease,
                error=None,
                delay_ms=delay_ms,
                scheduled_at=at,
                refund_attempt=True,
            )
        except LeaseLostError:
            raise self._lost() from None
        self.finalized = True
        raise JobRescheduled(f"job {self.record.id} rescheduled")
