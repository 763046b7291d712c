"""Building blocks shared by the conformance cases: job factories, condition
waits with timeouts, and listeners that record what they receive."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

from queuert.ids import new_id
from queuert.ports.state import StateAdapter
from queuert.records import JobRecord, NewJob

T = TypeVar("T")

StateAdapterAny = StateAdapter[Any]

WAIT_S = 5.0
"""How long a case waits for something that must happen before it fails."""

LONG_LEASE_MS = 60_000
SHORT_LEASE_MS = 50
QUEUE = "conformance"
OWNER = "worker-1"
PAST = datetime(2020, 1, 1, tzinfo=UTC)
"""A fixed time well before any database clock: jobs scheduled here are due now."""


def unique(prefix: str) -> str:
    """A name no other case uses, for transports shared between cases."""
    return f"{prefix}-{new_id()}"


def new_job(
    queue: str = QUEUE,
    *,
    input: str = '{"value": 1}',
    chain_name: str | None = None,
    max_attempts: int = 3,
    priority: int = 0,
    scheduled_at: datetime | None = None,
    delay_ms: int = 0,
    job_id: str | None = None,
) -> NewJob:
    """The first job of a new chain (chain id = job id)."""
    job_id = job_id or new_id()
    return NewJob(
        id=job_id,
        chain_id=job_id,
        chain_name=chain_name or queue.split(":", 1)[0],
        queue=queue,
        position=0,
        input=input,
        max_attempts=max_attempts,
        priority=priority,
        scheduled_at=scheduled_at,
        delay_ms=delay_ms,
    )


def next_job(
    previous: JobRecord,
    queue: str | None = None,
    *,
    input: str = '{"step": "next"}',
    max_attempts: int = 3,
    delay_ms: int = 0,
) -> NewJob:
    """The continuation of ``previous``: same chain, next position."""
    return NewJob(
        id=new_id(),
        chain_id=previous.chain_id,
        chain_name=previous.chain_name,
        queue=queue or f"{previous.chain_name}:next-{previous.position + 1}",
        position=previous.position + 1,
        input=input,
        max_attempts=max_attempts,
        delay_ms=delay_ms,
    )


async def create_one(adapter: StateAdapterAny, job: NewJob | None = None) -> JobRecord:
    (created,) = await adapter.create_jobs(tx=None, jobs=[job or new_job()])
    return created


async def acquire_one(
    adapter: StateAdapterAny,
    queue: str = QUEUE,
    *,
    owner: str = OWNER,
    lease_ms: int = LONG_LEASE_MS,
) -> JobRecord:
    """Acquire exactly one job of ``queue``; fails the case when there is none."""
    acquired = await adapter.acquire_jobs(
        tx=None, queues=[queue], limit=1, owner=owner, lease_ms=lease_ms
    )
    assert len(acquired) == 1, f"expected one job of {queue!r} to be acquired, got {acquired}"
    return acquired[0]


async def running_job(
    adapter: StateAdapterAny,
    job: NewJob | None = None,
    *,
    owner: str = OWNER,
    lease_ms: int = LONG_LEASE_MS,
) -> JobRecord:
    """Create a job and acquire it: the job is ``running`` with a lease."""
    created = await create_one(adapter, job)
    return await acquire_one(adapter, created.queue, owner=owner, lease_ms=lease_ms)


async def eventually(
    probe: Callable[[], Awaitable[T]],
    *,
    what: str,
    timeout: float = WAIT_S,
    interval: float = 0.01,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail the
    case with ``what`` when ``timeout`` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def tolerance(adapter: StateAdapterAny) -> timedelta:
    """How far two timestamps the adapter computed from one clock reading may drift
    apart through storage rounding."""
    return timedelta(milliseconds=1 + 2 * adapter.capabilities.clock_precision_ms)


def slack(adapter: StateAdapterAny) -> timedelta:
    """How far apart two timestamps of one operation may be (``updated_at`` and
    ``leased_until``, say) when an adapter reads its clock more than once: enough
    for a slow machine, far too little to hide a wrong unit."""
    return timedelta(seconds=1) + tolerance(adapter)


def assert_near(actual: datetime | None, expected: datetime, within: timedelta) -> None:
    assert actual is not None, f"expected a time near {expected}, got None"
    assert abs(actual - expected) <= within, f"{actual} is not within {within} of {expected}"


def assert_utc(*values: datetime | None) -> None:
    """Every given timestamp is timezone-aware and in UTC."""
    for value in values:
        if value is None:
            continue
        assert value.tzinfo is not None, f"{value!r} is naive; adapters return aware UTC times"
        assert value.utcoffset() == timedelta(0), f"{value!r} is not in UTC"


def ids(records: Sequence[Any]) -> list[str]:
    return [record.id for record in records]


class Recorder(Generic[T]):
    """A listener that records every call, so a case can wait for deliveries.

    With ``fail=True`` it records, then raises, to check listener isolation.
    """

    def __init__(self, *, fail: bool = False) -> None:
        self.items: list[T] = []
        self._fail = fail
        self._changed = asyncio.Event()

    async def __call__(self, item: T) -> None:
        self.items.append(item)
        self._changed.set()
        if self._fail:
            raise RuntimeError(f"listener failure on purpose after {item!r}")

    async def wait_for(
        self, predicate: Callable[[list[T]], bool], *, what: str, timeout: float = WAIT_S
    ) -> None:
        """Wait until ``predicate(items)`` holds; fail the case after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate(self.items):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}; received {self.items!r}"
                )
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    async def wait_for_item(
        self, match: Callable[[T], bool], *, what: str, timeout: float = WAIT_S
    ) -> T:
        await self.wait_for(
            lambda items: any(match(item) for item in items), what=what, timeout=timeout
        )
        return next(item for item in self.items if match(item))
