"""The one place where logging, metrics and transient-error retries wrap the ports.

Adapters stay thin; core talks to them only through these wrappers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from datetime import datetime
from typing import TypeVar

from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import LeaseLostError, TransientStateError
from queuert.handed_out import HandedOut
from queuert.metrics import Metrics
from queuert.observer import Observer, Outcome
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)
from queuert.ports.state import StateAdapter, Tx
from queuert.ports.sync import SyncPublisher
from queuert.rate_records import RateAcquisition
from queuert.records import (
    BlockerRecord,
    ChainFilter,
    ChainRecord,
    DedupKey,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
    ScheduleSlot,
)

R = TypeVar("R")

log = logging.getLogger("queuert.state")
notify_log = logging.getLogger("queuert.notify")


class InstrumentedState(StateAdapter[Tx]):
    """Wraps a state adapter: counts calls and errors, logs failures, and retries
    operations that run in their own transaction (``tx=None``) when they raise
    :class:`~queuert.errors.TransientStateError`. Inside a caller's transaction
    nothing is retried: the caller's transaction is already broken.

    An :class:`~queuert.observer.Observer` set as ``observer`` is told about chain
    starts, continuations, phases, lease renewals and losses, attempt ends and reaps.
    """

    observer: Observer | None = None

    def __init__(
        self,
        inner: StateAdapter[Tx],
        metrics: Metrics,
        *,
        attempts: int = 4,
        base_delay: float = 0.05,
    ) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.metrics = metrics
        self._attempts = attempts
        self._base_delay = base_delay
        self._handed_out = HandedOut()

    async def _call(
        self,
        op: str,
        tx: object,
        fn: Callable[[], Awaitable[R]],
        done: Callable[[], Awaitable[R | None]] | None = None,
    ) -> R:
        """``fn()``, retried after transient errors when ``tx`` is ``None``. Before a
        retry, ``done()`` (when given) may find that the failed try took effect
        after all (its commit's acknowledgement was lost) and return its result."""
        self.metrics.incr(f"state.{op}.calls")
        attempt = 1
        while True:
            try:
                if attempt > 1 and done is not None:
                    result = await done()
                    if result is not None:
                        self.metrics.incr(f"state.{op}.found_done")
                        return result
                return await fn()
            except TransientStateError as exc:
                self.metrics.incr(f"state.{op}.transient_errors")
                if tx is not None or attempt >= self._attempts:
                    log.warning("state operation %s failed: %s", op, exc)
                    raise
                delay = self._base_delay * 2 ** (attempt - 1) * (0.5 + random.random())
                log.info(
                    "state operation %s failed transiently (%s); retry in %.3fs", op, exc, delay
                )
                await asyncio.sleep(delay)
                attempt += 1

    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        return self.inner.transaction()

    def leased_transaction(self, *, lease: Lease, lock: bool) -> AbstractAsyncContextManager[Tx]:
        # Counted as the operation it stands for; never retried (it is a transaction).
        # The attempt's phase is opened by its caller (JobContext): a claim and a
        # finalize both lock the job, so ``lock`` cannot tell them apart.
        self.metrics.incr("state.lock_job.calls" if lock else "state.verify_lease.calls")
        inner = self.inner.leased_transaction(lease=lease, lock=lock)
        if self.observer is None:
            return inner
        return _observed_transaction(inner, nullcontext(), self.observer, lease)

    def savepoint(self, *, tx: Tx) -> AbstractAsyncContextManager[Tx]:
        return self.inner.savepoint(tx=tx)

    async def migrate(self) -> None:
        await self.inner.migrate()

    async def check_schema(self) -> None:
        await self._call("check_schema", None, self.inner.check_schema)

    async def close(self) -> None:
        await self.inner.close()

    async def create_jobs(self, *, tx: Tx | None, jobs: Sequence[NewJob]) -> Sequence[JobRecord]:
        async def created() -> Sequence[JobRecord] | None:
            # The jobs of one call are written in one transaction: all or none exist.
            first = await self.inner.get_job(tx=None, job_id=jobs[0].id)
            if first is None or first.chain_id != jobs[0].chain_id:
                return None
            records = [first]
            for job in jobs[1:]:
                record = await self.inner.get_job(tx=None, job_id=job.id)
                if record is None:
                    return None
                records.append(record)
            return records

        done = created if tx is None and jobs else None
        if self.observer is None:
            return await self._call(
                "create_jobs", tx, lambda: self.inner.create_jobs(tx=tx, jobs=jobs), done
            )
        with self.observer.creating(jobs, by=None) as traced:
            return await self._call(
                "create_jobs", tx, lambda: self.inner.create_jobs(tx=tx, jobs=traced), done
            )

    async def acquire_jobs(
        self, *, tx: Tx | None, queues: Sequence[str], limit: int, owner: str, lease_ms: int
    ) -> list[JobRecord]:
        async def acquired() -> list[JobRecord] | None:
            found = await self._handed_out.orphans(
                self.inner, queues=queues, owner=owner, limit=limit
            )
            return found or None

        records = await self._call(
            "acquire_jobs",
            tx,
            lambda: self.inner.acquire_jobs(
                tx=tx, queues=queues, limit=limit, owner=owner, lease_ms=lease_ms
            ),
            acquired if tx is None else None,
        )
        self._handed_out.add(records)
        return records

    async def renew_lease(self, *, tx: Tx | None, lease: Lease, lease_ms: int) -> datetime:
        until = await self._leased(
            lease,
            self._call(
                "renew_lease",
                tx,
                lambda: self.inner.renew_lease(tx=tx, lease=lease, lease_ms=lease_ms),
            ),
        )
        if self.observer is not None:
            self.observer.lease_renewed(lease, until)
        return until

    async def lock_job(self, *, tx: Tx, lease: Lease) -> JobRecord:
        return await self._call("lock_job", tx, lambda: self.inner.lock_job(tx=tx, lease=lease))

    async def verify_lease(self, *, tx: Tx, lease: Lease) -> JobRecord:
        return await self._call(
            "verify_lease", tx, lambda: self.inner.verify_lease(tx=tx, lease=lease)
        )

    async def complete_job(self, *, tx: Tx | None, lease: Lease, output: str) -> JobRecord:
        self._handed_out.end(lease)
        call = self._call(
            "complete_job", tx, lambda: self.inner.complete_job(tx=tx, lease=lease, output=output)
        )
        if self.observer is None:
            return await call
        with self._own_finalize(tx, lease):
            record = await self._leased(lease, call)
            self.observer.ended(lease, "completed")
        return record

    async def continue_job(self, *, tx: Tx | None, lease: Lease, next_job: NewJob) -> JobRecord:
        self._handed_out.end(lease)
        if self.observer is None:
            return await self._call(
                "continue_job",
                tx,
                lambda: self.inner.continue_job(tx=tx, lease=lease, next_job=next_job),
            )
        with (
            self._own_finalize(tx, lease),
            self.observer.creating([next_job], by=lease) as traced,
        ):
            record = await self._leased(
                lease,
                self._call(
                    "continue_job",
                    tx,
                    lambda: self.inner.continue_job(tx=tx, lease=lease, next_job=traced[0]),
                ),
            )
            self.observer.ended(lease, "continued")
        return record

    async def complete_locked_job(self, *, tx: Tx, lease: Lease, output: str) -> JobRecord | None:
        self._handed_out.end(lease)
        record = await self._leased(
            lease,
            self._call(
                "complete_job",
                tx,
                lambda: self.inner.complete_locked_job(tx=tx, lease=lease, output=output),
            ),
        )
        if self.observer is not None:
            self.observer.ended(lease, "completed")
        return record

    async def continue_locked_job(self, *, tx: Tx, lease: Lease, next_job: NewJob) -> None:
        self._handed_out.end(lease)
        if self.observer is None:
            await self._call(
                "continue_job",
                tx,
                lambda: self.inner.continue_locked_job(tx=tx, lease=lease, next_job=next_job),
            )
            return
        with self.observer.creating([next_job], by=lease) as traced:
            await self._leased(
                lease,
                self._call(
                    "continue_job",
                    tx,
                    lambda: self.inner.continue_locked_job(tx=tx, lease=lease, next_job=traced[0]),
                ),
            )
        self.observer.ended(lease, "continued")

    async def reschedule_job(
        self,
        *,
        tx: Tx | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        self._handed_out.end(lease)
        record = await self._leased(
            lease,
            self._call(
                "reschedule_job",
                tx,
                lambda: self.inner.reschedule_job(
                    tx=tx,
                    lease=lease,
                    error=error,
                    delay_ms=delay_ms,
                    scheduled_at=scheduled_at,
                    refund_attempt=refund_attempt,
                ),
            ),
        )
        if self.observer is not None:
            if not refund_attempt:
                outcome: Outcome = "retried"
            elif error is None:
                outcome = "rescheduled"
            else:
                outcome = "released"
            delay = delay_ms if scheduled_at is None else None
            self.observer.ended(lease, outcome, error=error, delay_ms=delay)
        return record

    async def fail_job(self, *, tx: Tx | None, lease: Lease, error: JobError) -> JobRecord:
        self._handed_out.end(lease)
        record = await self._leased(
            lease,
            self._call(
                "fail_job", tx, lambda: self.inner.fail_job(tx=tx, lease=lease, error=error)
            ),
        )
        if self.observer is not None:
            self.observer.ended(lease, "failed", error=error)
        return record

    async def reap_expired_leases(self, *, tx: Tx | None, limit: int) -> list[JobRecord]:
        records = await self._call(
            "reap_expired_leases", tx, lambda: self.inner.reap_expired_leases(tx=tx, limit=limit)
        )
        if self.observer is not None and records:
            self.observer.leases_expired(records)
        return records

    async def cancel_chain(self, *, tx: Tx | None, chain_id: str) -> ChainRecord | None:
        record = await self._call(
            "cancel_chain", tx, lambda: self.inner.cancel_chain(tx=tx, chain_id=chain_id)
        )
        if self.observer is not None and record is not None:
            self.observer.chain_cancelled(record)
        return record

    async def time_until_next_job(self, *, tx: Tx | None, queues: Sequence[str]) -> float | None:
        return await self._call(
            "time_until_next_job",
            tx,
            lambda: self.inner.time_until_next_job(tx=tx, queues=queues),
        )

    async def get_job(self, *, tx: Tx | None, job_id: str) -> JobRecord | None:
        return await self._call("get_job", tx, lambda: self.inner.get_job(tx=tx, job_id=job_id))

    async def list_jobs(
        self, *, tx: Tx | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        return await self._call(
            "list_jobs",
            tx,
            lambda: self.inner.list_jobs(tx=tx, filter=filter, after=after, limit=limit),
        )

    async def get_chain(self, *, tx: Tx | None, chain_id: str) -> ChainRecord | None:
        return await self._call(
            "get_chain", tx, lambda: self.inner.get_chain(tx=tx, chain_id=chain_id)
        )

    async def list_chains(
        self, *, tx: Tx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        return await self._call(
            "list_chains",
            tx,
            lambda: self.inner.list_chains(tx=tx, filter=filter, after=after, limit=limit),
        )

    async def delete_chains(self, *, tx: Tx | None, chain_ids: Sequence[str]) -> int:
        return await self._call(
            "delete_chains", tx, lambda: self.inner.delete_chains(tx=tx, chain_ids=chain_ids)
        )

    async def expect_concurrency(self, *, jobs: int) -> None:
        await self.inner.expect_concurrency(jobs=jobs)

    async def caller_transaction(self, tx: object) -> Tx:
        return await self.inner.caller_transaction(tx)

    def sync_transaction(self, conn: object) -> Tx:
        return self.inner.sync_transaction(conn)

    async def revoke_chain(self, *, tx: Tx | None, chain_id: str) -> RevokedChain:
        revoked = await self._call(
            "revoke_chain", tx, lambda: self.inner.revoke_chain(tx=tx, chain_id=chain_id)
        )
        if self.observer is not None:
            self.observer.chain_cancelled(revoked.chain)
        return revoked

    async def resume_job(self, *, tx: Tx | None, job_id: str) -> JobRecord:
        return await self._call(
            "resume_job", tx, lambda: self.inner.resume_job(tx=tx, job_id=job_id)
        )

    async def settle_job(
        self, *, tx: Tx | None, job_id: str, output: str | None, next_job: NewJob | None
    ) -> SettledJob:
        # A continuation written outside any attempt is observed as a chain start is.
        none: Sequence[NewJob] = ()
        creating = nullcontext(none) if next_job is None else self._creating([next_job], by=None)
        with creating as traced:
            settled = await self._call(
                "settle_job",
                tx,
                lambda: self.inner.settle_job(
                    tx=tx, job_id=job_id, output=output, next_job=traced[0] if traced else None
                ),
            )
        if self.observer is not None and next_job is None:
            self.observer.chain_completed(settled.job)
        return settled

    async def purge_chains(
        self, *, tx: Tx | None, ended_before: datetime, statuses: Sequence[JobStatus], limit: int
    ) -> int:
        return await self._call(
            "purge_chains",
            tx,
            lambda: self.inner.purge_chains(
                tx=tx, ended_before=ended_before, statuses=statuses, limit=limit
            ),
        )

    async def record_worker(self, *, tx: Tx | None, worker: WorkerInfo, forget_ms: int) -> None:
        await self._call(
            "record_worker",
            tx,
            lambda: self.inner.record_worker(tx=tx, worker=worker, forget_ms=forget_ms),
        )

    async def remove_worker(self, *, tx: Tx | None, worker_id: str) -> None:
        await self._call(
            "remove_worker", tx, lambda: self.inner.remove_worker(tx=tx, worker_id=worker_id)
        )

    async def list_workers(self, *, tx: Tx | None) -> list[WorkerRecord]:
        return await self._call("list_workers", tx, lambda: self.inner.list_workers(tx=tx))

    async def count_jobs(self, *, tx: Tx | None) -> QueueCounts:
        return await self._call("count_jobs", tx, lambda: self.inner.count_jobs(tx=tx))

    async def queue_position(self, *, tx: Tx | None, job_id: str) -> QueuePosition | None:
        return await self._call(
            "queue_position", tx, lambda: self.inner.queue_position(tx=tx, job_id=job_id)
        )

    async def schema_sql(self) -> list[str]:
        return await self.inner.schema_sql()

    async def is_transaction_open(self, *, tx: Tx) -> bool:
        return await self.inner.is_transaction_open(tx=tx)

    async def check_transaction(self, *, tx: object) -> Tx:
        return await self.inner.check_transaction(tx=tx)

    async def create_blocked_jobs(
        self,
        *,
        tx: Tx | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        with self._creating(jobs, by=None) as traced:
            return await self._call(
                "create_blocked_jobs",
                tx,
                lambda: self.inner.create_blocked_jobs(
                    tx=tx,
                    jobs=traced,
                    blocker_chain_ids=blocker_chain_ids,
                    run_on_blocker_failure=run_on_blocker_failure,
                ),
            )

    async def continue_blocked_job(
        self,
        *,
        tx: Tx | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        with self._creating([next_job], by=lease) as traced:
            record = await self._leased(
                lease,
                self._call(
                    "continue_blocked_job",
                    tx,
                    lambda: self.inner.continue_blocked_job(
                        tx=tx,
                        lease=lease,
                        next_job=traced[0],
                        blocker_chain_ids=blocker_chain_ids,
                        run_on_blocker_failure=run_on_blocker_failure,
                    ),
                ),
            )
        if self.observer is not None:
            self.observer.ended(lease, "continued")
        return record

    async def get_blockers(self, *, tx: Tx | None, job_id: str) -> list[BlockerRecord]:
        return await self._call(
            "get_blockers", tx, lambda: self.inner.get_blockers(tx=tx, job_id=job_id)
        )

    async def list_dependent_chains(self, *, tx: Tx | None, chain_ids: Sequence[str]) -> list[str]:
        return await self._call(
            "list_dependent_chains",
            tx,
            lambda: self.inner.list_dependent_chains(tx=tx, chain_ids=chain_ids),
        )

    async def create_deduplicated_jobs(
        self,
        *,
        tx: Tx | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        with self._creating(jobs, by=None) as traced:
            holders = await self._call(
                "create_deduplicated_jobs",
                tx,
                lambda: self.inner.create_deduplicated_jobs(
                    tx=tx,
                    jobs=traced,
                    dedup=dedup,
                    blocker_chain_ids=blocker_chain_ids,
                    run_on_blocker_failure=run_on_blocker_failure,
                ),
            )
            skipped = [job for job, holder in zip(traced, holders, strict=True) if holder != job.id]
            if self.observer is not None and skipped:
                self.observer.deduplicated(skipped)
        return holders

    # -- observation ---------------------------------------------------------------------

    async def _leased(self, lease: Lease, call: Awaitable[R]) -> R:
        """``call``'s result; a lost lease is told to the observer on its way out."""
        try:
            return await call
        except LeaseLostError:
            if self.observer is not None:
                self.observer.lease_lost(lease)
            raise

    def _creating(
        self, jobs: Sequence[NewJob], *, by: Lease | None
    ) -> AbstractContextManager[Sequence[NewJob]]:
        """The observer's :meth:`~queuert.observer.Observer.creating`, or ``jobs`` as
        they are without an observer."""
        if self.observer is None:
            return nullcontext(jobs)
        return self.observer.creating(jobs, by=by)

    def _own_finalize(self, tx: Tx | None, lease: Lease) -> AbstractContextManager[None]:
        """A finalize phase for a completion written in its own transaction (inside a
        caller's transaction the leased transaction is the phase)."""
        if tx is None and self.observer is not None:
            return self.observer.phase(lease, "finalize")
        return nullcontext()

    async def acquire_limited_jobs(
        self,
        *,
        tx: Tx | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        async def acquired() -> list[JobRecord] | None:
            found = await self._handed_out.orphans(
                self.inner, queues=[queue], owner=owner, limit=limit
            )
            return found or None

        records = await self._call(
            "acquire_limited_jobs",
            tx,
            lambda: self.inner.acquire_limited_jobs(
                tx=tx,
                queue=queue,
                limit=limit,
                owner=owner,
                lease_ms=lease_ms,
                concurrency_limit=concurrency_limit,
                per_key=per_key,
            ),
            acquired if tx is None else None,
        )
        # Known as handed out, so that no later retry takes them for orphans.
        self._handed_out.add(records)
        return records

    async def acquire_rate_limited_jobs(
        self,
        *,
        tx: Tx | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        rate: int,
        window_ms: int,
        per_key: bool,
        concurrency_limit: int | None,
    ) -> RateAcquisition:
        async def acquired() -> RateAcquisition | None:
            found = await self._handed_out.orphans(
                self.inner, queues=[queue], owner=owner, limit=limit
            )
            return RateAcquisition(found) if found else None

        result = await self._call(
            "acquire_rate_limited_jobs",
            tx,
            lambda: self.inner.acquire_rate_limited_jobs(
                tx=tx,
                queue=queue,
                limit=limit,
                owner=owner,
                lease_ms=lease_ms,
                rate=rate,
                window_ms=window_ms,
                per_key=per_key,
                concurrency_limit=concurrency_limit,
            ),
            acquired if tx is None else None,
        )
        self._handed_out.add(result.jobs)
        return result

    async def start_scheduled_chain(
        self, *, tx: Tx | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        async def started() -> bool | None:
            # A failed try whose commit went through recorded the slot with this chain.
            slot = await self.inner.get_chain_schedule_slot(tx=None, chain_id=job.chain_id)
            return True if slot is not None and slot.schedule == schedule else None

        return await self._call(
            "start_scheduled_chain",
            tx,
            lambda: self.inner.start_scheduled_chain(
                tx=tx, schedule=schedule, slot_time=slot_time, job=job
            ),
            started if tx is None else None,
        )

    async def get_last_schedule_slot(self, *, tx: Tx | None, schedule: str) -> ScheduleSlot | None:
        return await self._call(
            "get_last_schedule_slot",
            tx,
            lambda: self.inner.get_last_schedule_slot(tx=tx, schedule=schedule),
        )

    async def get_chain_schedule_slot(self, *, tx: Tx | None, chain_id: str) -> ScheduleSlot | None:
        return await self._call(
            "get_chain_schedule_slot",
            tx,
            lambda: self.inner.get_chain_schedule_slot(tx=tx, chain_id=chain_id),
        )


@asynccontextmanager
async def _observed_transaction(
    inner: AbstractAsyncContextManager[Tx],
    phase: AbstractContextManager[None],
    observer: Observer,
    lease: Lease,
) -> AsyncIterator[Tx]:
    with phase:
        try:
            async with inner as tx:
                yield tx
        except LeaseLostError:
            observer.lease_lost(lease)
            raise


PUBLISH_TIMEOUT_S = 5.0
"""How long one publish may take before it is given up (and logged)."""

WAKE_CLAIM_TIMEOUT_S = 2.0
"""How long a wake claim may take before the worker wakes anyway."""

CLOSE_WAIT_S = 1.0
"""How long closing waits for publishes still on their way before giving them up."""

MAX_PUBLISHES_IN_FLIGHT = 1000
"""Publishes waiting on a slow transport beyond this are dropped (and counted)."""


class InstrumentedNotify(NotifyAdapter):
    """Wraps a notify adapter: publishing never raises (notifications are hints, a
    failure is logged and counted) and a failed wake claim counts as a wake.

    Publishing never waits for the transport: each publish is sent by a task of
    its own, given up after ``publish_timeout`` seconds, so that neither a job's
    slot nor the application's transaction waits on a notifier that hangs (a
    connection that silently drops packets). A wake claim taking longer than
    ``wake_timeout`` seconds counts as a wake. :meth:`close` waits up to a second
    for publishes still on their way, then gives them up."""

    def __init__(
        self,
        inner: NotifyAdapter,
        metrics: Metrics,
        *,
        publish_timeout: float = PUBLISH_TIMEOUT_S,
        wake_timeout: float = WAKE_CLAIM_TIMEOUT_S,
    ) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.metrics = metrics
        self.publish_timeout = publish_timeout
        self.wake_timeout = wake_timeout
        self._sending: set[asyncio.Task[None]] = set()

    async def _publish(self, signal: str, fn: Callable[[], Awaitable[None]]) -> None:
        self.metrics.incr(f"notify.{signal}.published")
        if len(self._sending) >= MAX_PUBLISHES_IN_FLIGHT:
            self.metrics.incr(f"notify.{signal}.publish_dropped")
            notify_log.debug("publishing %s dropped: too many publishes in flight", signal)
            return
        task = asyncio.create_task(self._send(signal, fn), name=f"queuert-publish-{signal}")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, signal: str, fn: Callable[[], Awaitable[None]]) -> None:
        try:
            async with asyncio.timeout(self.publish_timeout):
                await fn()
        except Exception as exc:  # a lost hint only delays work until the next poll
            self.metrics.incr(f"notify.{signal}.publish_errors")
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no answer within {self.publish_timeout:g} s")
            notify_log.warning("publishing %s failed: %s", signal, exc)

    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        await self._publish(
            "job_scheduled", lambda: self.inner.publish_job_scheduled(queue=queue, count=count)
        )

    async def publish_chain_completed(self, *, chain_id: str) -> None:
        await self._publish(
            "chain_completed", lambda: self.inner.publish_chain_completed(chain_id=chain_id)
        )

    async def publish_lease_lost(self, *, job_id: str) -> None:
        await self._publish("lease_lost", lambda: self.inner.publish_lease_lost(job_id=job_id))

    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        return await self.inner.subscribe_job_scheduled(queues=queues, listener=listener)

    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self.inner.subscribe_chain_completed(chain_id=chain_id, listener=listener)

    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        return await self.inner.subscribe_lease_lost(job_id=job_id, listener=listener)

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        self.metrics.incr("notify.claim_wake.calls")
        try:
            async with asyncio.timeout(self.wake_timeout):
                won = await self.inner.claim_wake(signal=signal)
        except Exception as exc:
            notify_log.warning("claiming a wake hint failed (%s); waking anyway", exc)
            return True
        if won:
            self.metrics.incr("notify.claim_wake.won")
        return won

    async def close(self) -> None:
        sending = list(self._sending)
        if sending:
            _, late = await asyncio.wait(sending, timeout=min(self.publish_timeout, CLOSE_WAIT_S))
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late)
        await self.inner.close()

    def sync_publisher(self) -> SyncPublisher | None:
        return self.inner.sync_publisher()
