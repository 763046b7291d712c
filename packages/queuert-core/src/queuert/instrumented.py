"""The one place where logging, metrics and transient-error retries wrap the ports.

Adapters stay thin; core talks to them only through these wrappers. The state
wrapper's groups of operations live beside it (``instrumented_calls``,
``instrumented_control``, ``instrumented_limits``), the notify wrapper in
``instrumented_notify``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    nullcontext,
)
from datetime import datetime

from queuert.errors import LeaseLostError
from queuert.instrumented_control import ControlForwarding
from queuert.instrumented_limits import LimitedAcquisition
from queuert.instrumented_notify import (
    CLOSE_WAIT_S,
    MAX_PUBLISHES_IN_FLIGHT,
    PUBLISH_TIMEOUT_S,
    WAKE_CLAIM_TIMEOUT_S,
    InstrumentedNotify,
)
from queuert.observer import Observer, Outcome
from queuert.ports.state import Tx
from queuert.records import ChainRecord, DedupKey, JobError, JobRecord, Lease, NewJob

__all__ = [
    "CLOSE_WAIT_S",
    "MAX_PUBLISHES_IN_FLIGHT",
    "PUBLISH_TIMEOUT_S",
    "WAKE_CLAIM_TIMEOUT_S",
    "InstrumentedNotify",
    "InstrumentedState",
]


class InstrumentedState(ControlForwarding[Tx], LimitedAcquisition[Tx]):
    """Wraps a state adapter: counts calls and errors, logs failures, and retries
    operations that run in their own transaction (``tx=None``) when they raise
    :class:`~queuert.errors.TransientStateError`. Inside a caller's transaction
    nothing is retried: the caller's transaction is already broken.

    An :class:`~queuert.observer.Observer` set as ``observer`` is told about chain
    starts, continuations, phases, lease renewals and losses, attempt ends and reaps.
    """

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

    async def expect_concurrency(self, *, jobs: int) -> None:
        await self.inner.expect_concurrency(jobs=jobs)

    async def caller_transaction(self, tx: object) -> Tx:
        return await self.inner.caller_transaction(tx)

    def sync_transaction(self, conn: object) -> Tx:
        return self.inner.sync_transaction(conn)

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
