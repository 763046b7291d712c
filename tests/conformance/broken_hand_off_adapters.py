"""Adapters with one deliberate bug each in the hand-off of a completed job's
place under its concurrency limit, used to show that the conformance suite's
cases catch it. Each is the reference adapter with a single override."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from queuert.adapters.memory_limits import _running_by_key, hand_off
from queuert.adapters.memory_rows import _Row
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.errors import LeaseLostError
from queuert.records import JobRecord, JobStatus, Lease


class CountlessHandOffStateAdapter(MemoryStateAdapter):
    """Bug: hands the place on however many jobs are running."""

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
        return await super().complete_job_and_hand_off(
            lease=lease,
            output=output,
            lease_ms=lease_ms,
            concurrency_limit=10**9,
            per_key=per_key,
            lease_margin_ms=lease_margin_ms,
        )


class KeyBlindHandOffStateAdapter(MemoryStateAdapter):
    """Bug: under a per-key limit, counts the key's running jobs but hands the place
    to the next job of the queue, whatever its key."""

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
        def statement(tx: MemoryTransaction) -> tuple[JobRecord, JobRecord | None]:
            row = self._guarded(lease)
            now = self.now()
            key = row.concurrency_key if per_key else None
            running = _running_by_key(self, row.queue, now, per_key).get(key, 0)
            assert row.leased_until is not None
            left = row.leased_until - now
            completed = self._complete_job(tx, lease, output)
            if running > concurrency_limit or left < timedelta(milliseconds=lease_margin_ms):
                return completed, None
            handed = self._acquire_jobs(tx, [row.queue], 1, lease.owner, lease_ms)
            return completed, handed[0] if handed else None

        return await self._run(None, statement)


class MarginlessHandOffStateAdapter(MemoryStateAdapter):
    """Bug: hands the place on whatever is left of the completed job's lease."""

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
        return await super().complete_job_and_hand_off(
            lease=lease,
            output=output,
            lease_ms=lease_ms,
            concurrency_limit=concurrency_limit,
            per_key=per_key,
            lease_margin_ms=0,
        )


class LostLeaseHandOffStateAdapter(MemoryStateAdapter):
    """Bug: when the completion finds the lease lost, still starts the next job (in
    a transaction of its own) before raising."""

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
        try:
            return await super().complete_job_and_hand_off(
                lease=lease,
                output=output,
                lease_ms=lease_ms,
                concurrency_limit=concurrency_limit,
                per_key=per_key,
                lease_margin_ms=lease_margin_ms,
            )
        except LeaseLostError:
            job = await self.get_job(tx=None, job_id=lease.job_id)
            if job is not None:
                await self.acquire_limited_jobs(
                    tx=None,
                    queue=job.queue,
                    limit=1,
                    owner=lease.owner,
                    lease_ms=lease_ms,
                    concurrency_limit=concurrency_limit,
                    per_key=per_key,
                )
            raise


class _Peeked(Exception):
    """Rolls back the transaction a hand-off was tried in."""


class RacyHandOffStateAdapter(MemoryStateAdapter):
    """Bug: finds the next job in one transaction and leases it in another, so that
    hand-offs at the same time find, and lease, the same job."""

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
        found: JobRecord | None = None
        try:
            async with self.transaction() as tx:
                # The correct hand-off, rolled back: only which job it handed is kept.
                _, found = hand_off(
                    self, tx, lease, output, lease_ms, concurrency_limit, per_key, lease_margin_ms
                )
                raise _Peeked
        except _Peeked:
            pass
        await asyncio.sleep(0.01)
        completed = await self.complete_job(tx=None, lease=lease, output=output)
        if found is None:
            return completed, None
        job_id = found.id

        def lease_it(tx: MemoryTransaction) -> JobRecord:
            row = self._jobs[job_id]
            now = self.now()
            self._touch(tx, row)
            row.status = JobStatus.RUNNING
            row.attempt += 1
            row.leased_by = lease.owner
            row.leased_until = now + timedelta(milliseconds=lease_ms)
            row.updated_at = now
            self._index(row)
            return row.record()

        return completed, await self._run(None, lease_it)


class MicrosecondLeaseHandOffStateAdapter(MemoryStateAdapter):
    """Bug: leases the handed job for ``lease_ms`` microseconds (a unit slip), so
    its lease is over before its handler could run."""

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
        return await super().complete_job_and_hand_off(
            lease=lease,
            output=output,
            lease_ms=max(1, lease_ms // 1000),
            concurrency_limit=concurrency_limit,
            per_key=per_key,
            lease_margin_ms=lease_margin_ms,
        )


class CreationOnlyKeyIndexStateAdapter(MemoryStateAdapter):
    """Bug: indexes a job under its concurrency key when it is created only, so a
    keyed job that goes back to pending (rescheduled) is never handed a place."""

    def _index(self, row: _Row) -> None:
        key = row.concurrency_key
        row.concurrency_key = key if row.attempt == 0 else None
        try:
            super()._index(row)
        finally:
            row.concurrency_key = key
