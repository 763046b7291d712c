"""The instrumented state's acquisition under limits: concurrency-limited and
rate-limited queues, whose retries first look for jobs a lost acknowledgement
handed out."""

from __future__ import annotations

from queuert.instrumented_calls import InstrumentedCalls
from queuert.ports.state import Tx
from queuert.rate_records import RateAcquisition
from queuert.records import JobRecord


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
