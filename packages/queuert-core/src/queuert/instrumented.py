"""The one place where logging, metrics and transient-error retries wrap the ports.

Adapters stay thin; core talks to them only through these wrappers.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import TypeVar

from queuert.errors import TransientStateError
from queuert.metrics import Metrics
from queuert.ports.notify import (
    IdListener,
    NotifyAdapter,
    ScheduledListener,
    ScheduledSignal,
    Subscription,
)
from queuert.ports.state import StateAdapter, Tx
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
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
    nothing is retried: the caller's transaction is already broken."""

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

    async def _call(self, op: str, tx: object, fn: Callable[[], Awaitable[R]]) -> R:
        self.metrics.incr(f"state.{op}.calls")
        attempt = 1
        while True:
            try:
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
        self.metrics.incr("state.lock_job.calls" if lock else "state.verify_lease.calls")
        return self.inner.leased_transaction(lease=lease, lock=lock)

    def savepoint(self, *, tx: Tx) -> AbstractAsyncContextManager[Tx]:
        return self.inner.savepoint(tx=tx)

    async def migrate(self) -> None:
        await self.inner.migrate()

    async def check_schema(self) -> None:
        await self._call("check_schema", None, self.inner.check_schema)

    async def close(self) -> None:
        await self.inner.close()

    async def create_jobs(self, *, tx: Tx | None, jobs: Sequence[NewJob]) -> Sequence[JobRecord]:
        return await self._call("create_jobs", tx, lambda: self.inner.create_jobs(tx=tx, jobs=jobs))

    async def acquire_jobs(
        self, *, tx: Tx | None, queues: Sequence[str], limit: int, owner: str, lease_ms: int
    ) -> list[JobRecord]:
        return await self._call(
            "acquire_jobs",
            tx,
            lambda: self.inner.acquire_jobs(
                tx=tx, queues=queues, limit=limit, owner=owner, lease_ms=lease_ms
            ),
        )

    async def renew_lease(self, *, tx: Tx | None, lease: Lease, lease_ms: int) -> datetime:
        return await self._call(
            "renew_lease", tx, lambda: self.inner.renew_lease(tx=tx, lease=lease, lease_ms=lease_ms)
        )

    async def lock_job(self, *, tx: Tx, lease: Lease) -> JobRecord:
        return await self._call("lock_job", tx, lambda: self.inner.lock_job(tx=tx, lease=lease))

    async def verify_lease(self, *, tx: Tx, lease: Lease) -> JobRecord:
        return await self._call(
            "verify_lease", tx, lambda: self.inner.verify_lease(tx=tx, lease=lease)
        )

    async def complete_job(self, *, tx: Tx | None, lease: Lease, output: str) -> JobRecord:
        return await self._call(
            "complete_job", tx, lambda: self.inner.complete_job(tx=tx, lease=lease, output=output)
        )

    async def continue_job(self, *, tx: Tx | None, lease: Lease, next_job: NewJob) -> JobRecord:
        return await self._call(
            "continue_job",
            tx,
            lambda: self.inner.continue_job(tx=tx, lease=lease, next_job=next_job),
        )

    async def complete_locked_job(self, *, tx: Tx, lease: Lease, output: str) -> None:
        await self._call(
            "complete_job",
            tx,
            lambda: self.inner.complete_locked_job(tx=tx, lease=lease, output=output),
        )

    async def continue_locked_job(self, *, tx: Tx, lease: Lease, next_job: NewJob) -> None:
        await self._call(
            "continue_job",
            tx,
            lambda: self.inner.continue_locked_job(tx=tx, lease=lease, next_job=next_job),
        )

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
        return await self._call(
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
        )

    async def fail_job(self, *, tx: Tx | None, lease: Lease, error: JobError) -> JobRecord:
        return await self._call(
            "fail_job", tx, lambda: self.inner.fail_job(tx=tx, lease=lease, error=error)
        )

    async def reap_expired_leases(self, *, tx: Tx | None, limit: int) -> list[JobRecord]:
        return await self._call(
            "reap_expired_leases", tx, lambda: self.inner.reap_expired_leases(tx=tx, limit=limit)
        )

    async def cancel_chain(self, *, tx: Tx | None, chain_id: str) -> ChainRecord | None:
        return await self._call(
            "cancel_chain", tx, lambda: self.inner.cancel_chain(tx=tx, chain_id=chain_id)
        )

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
        return await self._call(
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
        )

    async def start_scheduled_chain(
        self, *, tx: Tx | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        return await self._call(
            "start_scheduled_chain",
            tx,
            lambda: self.inner.start_scheduled_chain(
                tx=tx, schedule=schedule, slot_time=slot_time, job=job
            ),
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


class InstrumentedNotify(NotifyAdapter):
    """Wraps a notify adapter: publishing never raises (notifications are hints, a
    failure is logged and counted) and a failed wake claim counts as a wake."""

    def __init__(self, inner: NotifyAdapter, metrics: Metrics) -> None:
        self.inner = inner
        self.capabilities = inner.capabilities
        self.metrics = metrics

    async def _publish(self, signal: str, fn: Callable[[], Awaitable[None]]) -> None:
        self.metrics.incr(f"notify.{signal}.published")
        try:
            await fn()
        except Exception as exc:  # a lost hint only delays work until the next poll
            self.metrics.incr(f"notify.{signal}.publish_errors")
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
            won = await self.inner.claim_wake(signal=signal)
        except Exception as exc:
            notify_log.warning("claiming a wake hint failed (%s); waking anyway", exc)
            return True
        if won:
            self.metrics.incr("notify.claim_wake.won")
        return won

    async def close(self) -> None:
        await self.inner.close()
