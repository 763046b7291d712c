"""The handler's view of its job's phases: claim, heartbeat, finalize."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
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
    ValidationError,
)
from queuert.ids import new_id
from queuert.job import Continuation
from queuert.notifications import PendingNotifications, pending_notifications
from queuert.ports.state import Tx
from queuert.records import JobRecord, JobStatus, Lease, NewJob

if TYPE_CHECKING:
    from queuert.client import ChainHandle, Queuert

OutT = TypeVar("OutT")
StepInT = TypeVar("StepInT")
R = TypeVar("R")


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
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise LeaseError(f"{name} must be a positive integer of milliseconds, got {value!r}")
    return value


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
                f"a job continues its chain at most once, not again with {queue!r}"
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
        self.notifications = PendingNotifications()

    # -- helpers -----------------------------------------------------------------

    def build_next_job(self, queue: QueueDef[StepInT, OutT], input: StepInT) -> NewJob:
        if not isinstance(queue, QueueDef) or self._app.queues.get(queue.name) is not queue:
            raise ValidationError(f"queue {queue!r} is not part of any registered chain")
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
        )

    def _ensure_open(self) -> None:
        if self.lease_lost:
            raise LeaseLostError(self.record.id)
        if self.finalized:
            raise ContinuationError(f"job {self.record.id} is already finalized")

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
        """Run ``read(tx)`` in a transaction that first verifies the lease; returns
        what it returns. Raises LeaseLostError when the lease is
        gone. Whatever ``read`` writes commits with the transaction."""
        self._ensure_open()
        try:
            async with self._app.state.leased_transaction(lease=self.lease, lock=False) as tx:
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
        try:
            return await self._app.state.renew_lease(tx=None, lease=self.lease, lease_ms=ms)
        except LeaseLostError:
            raise self._lost() from None

    async def with_heartbeat(
        self, work: Awaitable[R], *, interval_ms: int, lease_ms: int | None = None
    ) -> R:
        """Await ``work`` while renewing the lease every ``interval_ms``. When the lease
        is lost, ``work`` is cancelled and LeaseLostError raised."""
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
            await self.heartbeat(lease_ms=ms)
            while True:
                done, _ = await asyncio.wait({task}, timeout=interval / 1000)
                if done:
                    return task.result()
                await self.heartbeat(lease_ms=ms)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    # -- finalize ------------------------------------------------------------------------

    async def finalize(
        self, commit: Callable[[Tx, EnqueueJob[OutT]], Awaitable[OutT | Continuation]]
    ) -> OutT | Continuation:
        """Run ``commit(tx, enqueue_job)`` in one transaction with the job's end:
        the lease is verified and locked first; when ``commit`` returns an output
        the job and chain complete with it, when it returns the continuation made
        by ``enqueue_job`` the next job is created. All of it commits together or
        none of it does. Raises LeaseLostError (nothing committed) when the lease
        is gone, ContinuationError when ``enqueue_job`` is misused.

        Chains ``commit`` starts with ``tx`` (fan-out) commit with the job's end;
        the workers they wake are told once that commit is done."""
        self._ensure_open()
        enqueue = _Enqueuer(self)
        state = self._app.state
        # Signals of what commit starts wait for the commit, as in Queuert.with_notify.
        started = PendingNotifications()
        token = pending_notifications.set(started)
        try:
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
        self._ensure_open()
        text = self.chain.output_codec.encode(output)
        try:
            await self._app.state.complete_job(tx=None, lease=self.lease, output=text)
        except LeaseLostError:
            raise self._lost() from None
        self.finalized = True
        self.notifications.completed_chains.append(self.record.chain_id)
        return output

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
                f"finalize called enqueue_job but returned {result!r}; return the continuation "
                "that enqueue_job gave"
            )
        text = self.chain.output_codec.encode(result)
        await state.complete_locked_job(tx=tx, lease=self.lease, output=text)
        self.notifications.completed_chains.append(self.record.chain_id)

    # -- reschedule ------------------------------------------------------------------------

    async def reschedule(
        self, *, after: timedelta | None = None, at: datetime | None = None
    ) -> NoReturn:
        """Put the job back to ``pending`` until ``at`` (or ``after`` from now) without
        counting this attempt, and end the handler (raises an exception the worker
        expects; do not catch it)."""
        if (after is None) == (at is None):
            raise ValidationError("reschedule takes exactly one of after= or at=")
        if after is not None and (not isinstance(after, timedelta) or after < timedelta(0)):
            raise ValidationError(f"after must be a non-negative timedelta, got {after!r}")
        if at is not None and (not isinstance(at, datetime) or at.tzinfo is None):
            raise ValidationError(f"at must be a timezone-aware datetime, got {at!r}")
        self._ensure_open()
        delay_ms = 0 if after is None else int(after.total_seconds() * 1000)
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
