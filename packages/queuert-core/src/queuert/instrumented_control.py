"""The instrumented state's forwarded reads and control operations: reading jobs
and chains back, operating chains, worker records, blockers and schedule slots."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime

from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.instrumented_calls import InstrumentedCalls
from queuert.ports.state import Tx
from queuert.records import (
    BlockerRecord,
    ChainFilter,
    ChainRecord,
    JobFilter,
    JobRecord,
    JobStatus,
    NewJob,
    Page,
    ScheduleSlot,
)


class ControlForwarding(InstrumentedCalls[Tx]):
    """Reads and control operations of :class:`~queuert.instrumented.InstrumentedState`,
    each counted, logged and (in its own transaction) retried."""

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
