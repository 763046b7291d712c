"""The instrumented state's acquisition under limits: concurrency-limited and
rate-limited queues, and the hand-off of a completed job's place, whose retries
first look for jobs a lost acknowledgement handed out."""

from __future__ import annotations

from queuert.instrumented_calls import InstrumentedCalls
from queuert.ports.state import Tx
from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord, JobStatus, Lease


class LimitedAcquisition(InstrumentedCalls[Tx]):
    """Acquisition under a concurrency or rate limit for
    :class:`~queuert.instrumented.InstrumentedState`."""

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

    async def complete_job_and_hand_off(
        self,
        *,
        lease: Lease,
        output: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
        lease_margin_ms: int,
    ) -> tuple[JobRecord, JobRecord | None]:
        async def done() -> tuple[JobRecord, JobRecord | None] | None:
            # The failed try may have committed: then the job is completed under this
            # attempt, and the job it handed its place to is leased to the owner but
            # known to nobody. Its record lacks the queues the completion unblocked,
            # whose workers then find those jobs by polling.
            record = await self.inner.get_job(tx=None, job_id=lease.job_id)
            if (
                record is None
                or record.status is not JobStatus.COMPLETED
                or record.attempt != lease.attempt
            ):
                return None
            found = await self._handed_out.orphans(
                self.inner, queues=[record.queue], owner=lease.owner, limit=1
            )
            return record, (found[0] if found else None)

        self._handed_out.end(lease)
        call = self._call(
            "complete_job_and_hand_off",
            None,
            lambda: self.inner.complete_job_and_hand_off(
                lease=lease,
                output=output,
                lease_ms=lease_ms,
                concurrency_limit=concurrency_limit,
                per_key=per_key,
                lease_margin_ms=lease_margin_ms,
            ),
            done,
        )
        if self.observer is None:
            record, handed = await call
        else:
            with self._own_finalize(None, lease):
                record, handed = await self._leased(lease, call)
                self.observer.ended(lease, "completed")
        if handed is not None:
            self._handed_out.add([handed])
        return record, handed

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
