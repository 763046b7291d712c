"""The application's reads: jobs and chains by id, and pages of them by filter."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic

from queuert import operations
from queuert.definitions import ChainDef
from queuert.errors import ValidationError
from queuert.ports.state import StateAdapter, Tx
from queuert.records import ChainFilter, ChainRecord, JobFilter, JobRecord, JobStatus, Page
from queuert.validation import check_many, check_text, show

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession


def _optional_id(name: str, value: str | None) -> str | None:
    return None if value is None else check_text(name, value)


def _check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise ValidationError(f"limit must be an integer within 1..10000, got {show(limit)}")
    return limit


def _statuses(
    status: JobStatus | str | Iterable[JobStatus | str] | None,
) -> tuple[JobStatus, ...] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, str) else check_many("status", status)
    try:
        return tuple(JobStatus(s) for s in items)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"unknown job status in {show(status)}") from exc


def _queues(queue: str | Iterable[str] | None) -> tuple[str, ...] | None:
    if queue is None:
        return None
    names = [queue] if isinstance(queue, str) else check_many("queue", queue)
    return tuple(check_text("queue", name) for name in names)


def _window(
    order: str, created_after: datetime | None, created_before: datetime | None
) -> dict[str, Any]:
    if order not in ("oldest", "newest"):
        raise ValidationError(f'order must be "oldest" or "newest", got {str(order)[:40]!r}')
    if created_after is not None:
        operations.check_time(created_after, "created_after")
    if created_before is not None:
        operations.check_time(created_before, "created_before")
    return {
        "created_after": created_after,
        "created_before": created_before,
        "newest_first": order == "newest",
    }


class ClientReads(Generic[Tx]):
    """The reading methods of :class:`~queuert.client.Queuert`: each validates its
    filter (ValidationError naming the bad value) and reads in the caller's ``tx``
    (or in a transaction of its own when ``tx`` is ``None``)."""

    if TYPE_CHECKING:
        state: StateAdapter[Tx]

        async def _caller_tx(self, tx: object) -> Tx | None: ...

    async def get_job(
        self, job_id: str, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> JobRecord | None:
        """The job with this id, or ``None``."""
        return await self.state.get_job(
            tx=await self._caller_tx(tx), job_id=check_text("job_id", job_id)
        )

    async def list_jobs(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        chain_id: str | None = None,
        queue: str | Iterable[str] | None = None,
        after: str | None = None,
        limit: int = 100,
        tx: Tx | AsyncSession | AsyncConnection | None = None,
        order: str = "oldest",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> Page[JobRecord]:
        """One page of jobs in creation order (``order="newest"`` for the newest
        first), created strictly between ``created_after`` and ``created_before`` when
        given; pass ``page.next_cursor`` as ``after`` for the next one."""
        job_filter = JobFilter(
            statuses=_statuses(status),
            chain_id=_optional_id("chain_id", chain_id),
            queues=_queues(queue),
            **_window(order, created_after, created_before),
        )
        return await self.state.list_jobs(
            tx=await self._caller_tx(tx),
            filter=job_filter,
            after=_optional_id("after", after),
            limit=_check_limit(limit),
        )

    async def get_chain(
        self, chain_id: str, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> ChainRecord | None:
        """The chain with this id, or ``None``."""
        return await self.state.get_chain(
            tx=await self._caller_tx(tx), chain_id=check_text("chain_id", chain_id)
        )

    async def list_chains(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        chain: ChainDef[Any, Any] | str | None = None,
        after: str | None = None,
        limit: int = 100,
        tx: Tx | AsyncSession | AsyncConnection | None = None,
        order: str = "oldest",
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        dedup_key: str | None = None,
        queue: str | Iterable[str] | None = None,
    ) -> Page[ChainRecord]:
        """One page of chains in creation order (``order="newest"`` for the newest
        first), created strictly between ``created_after`` and ``created_before`` when
        given; pass ``page.next_cursor`` as ``after`` for the next one. ``dedup_key``
        keeps the chains started with that deduplication key; ``queue`` (one name or
        several) the chains whose current job is of that queue."""
        names = None
        if chain is not None:
            name = chain.name if isinstance(chain, ChainDef) else chain
            names = (check_text("chain", name),)
        if dedup_key is not None:
            dedup_key = check_text("dedup_key", dedup_key)
        chain_filter = ChainFilter(
            statuses=_statuses(status),
            chain_names=names,
            dedup_key=dedup_key,
            queues=_queues(queue),
            **_window(order, created_after, created_before),
        )
        return await self.state.list_chains(
            tx=await self._caller_tx(tx),
            filter=chain_filter,
            after=_optional_id("after", after),
            limit=_check_limit(limit),
        )
