"""What the in-memory adapters promise beyond the port contracts: schema gate,
transaction misuse, the clock hook, URL factories and delivery details."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib.metadata import entry_points
from typing import Any

import pytest

from queuert.adapters import memory_notify, memory_state
from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.conformance.support import Recorder, eventually, new_job, next_job
from queuert.errors import (
    AdapterError,
    ConfigurationError,
    SchemaNotMigratedError,
    ValidationError,
)
from queuert.ports.notify import ScheduledSignal, Subscription
from queuert.records import (
    LEASE_EXPIRED_ERROR,
    ChainFilter,
    JobError,
    JobFilter,
    JobStatus,
    Lease,
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def migrated(clock: Callable[[], datetime] | None = None) -> MemoryStateAdapter:
    adapter = MemoryStateAdapter(clock=clock)
    await adapter.migrate()
    return adapter


LEASE = Lease(job_id="job", owner="w", attempt=1)

DATA_OPERATIONS: dict[str, Callable[[MemoryStateAdapter], Awaitable[object]]] = {
    "create_jobs": lambda a: a.create_jobs(tx=None, jobs=[new_job()]),
    "acquire_jobs": lambda a: a.acquire_jobs(
        tx=None, queues=["q"], limit=1, owner="w", lease_ms=1_000
    ),
    "renew_lease": lambda a: a.renew_lease(tx=None, lease=LEASE, lease_ms=1_000),
    "complete_job": lambda a: a.complete_job(tx=None, lease=LEASE, output="1"),
    "continue_job": lambda a: a.continue_job(tx=None, lease=LEASE, next_job=new_job()),
    "reschedule_job": lambda a: a.reschedule_job(tx=None, lease=LEASE, error=None),
    "fail_job": lambda a: a.fail_job(tx=None, lease=LEASE, error=JobError("E", "e")),
    "reap_expired_leases": lambda a: a.reap_expired_leases(tx=None, limit=1),
    "cancel_chain": lambda a: a.cancel_chain(tx=None, chain_id="c"),
    "time_until_next_job": lambda a: a.time_until_next_job(tx=None, queues=["q"]),
    "get_job": lambda a: a.get_job(tx=None, job_id="j"),
    "list_jobs": lambda a: a.list_jobs(tx=None, filter=JobFilter(), after=None, limit=1),
    "get_chain": lambda a: a.get_chain(tx=None, chain_id="c"),
    "list_chains": lambda a: a.list_chains(tx=None, filter=ChainFilter(), after=None, limit=1),
    "delete_chains": lambda a: a.delete_chains(tx=None, chain_ids=["c"]),
}


# -- schema gate -------------------------------------------------------------


async def test_check_schema_names_the_command_until_migrated() -> None:
    adapter = MemoryStateAdapter()
    with pytest.raises(SchemaNotMigratedError, match=r"await adapter\.migrate\(\)"):
        await adapter.check_schema()
    await adapter.migrate()
    await adapter.check_schema()


@pytest.mark.parametrize("operation", list(DATA_OPERATIONS))
async def test_every_data_operation_needs_migration(operation: str) -> None:
    adapter = MemoryStateAdapter()
    with pytest.raises(SchemaNotMigratedError, match=r"await adapter\.migrate\(\)"):
        await DATA_OPERATIONS[operation](adapter)


async def test_lock_job_needs_migration() -> None:
    adapter = MemoryStateAdapter()
    async with adapter.transaction() as tx:
        with pytest.raises(SchemaNotMigratedError):
            await adapter.lock_job(tx=tx, lease=LEASE)


# -- transaction misuse ------------------------------------------------------


async def test_operation_on_an_ended_transaction_raises() -> None:
    adapter = await migrated()
    async with adapter.transaction() as tx:
        pass
    assert not tx.is_open
    with pytest.raises(AdapterError, match="ended"):
        await adapter.create_jobs(tx=tx, jobs=[new_job()])
    with pytest.raises(AdapterError, match="ended"):
        await adapter.get_job(tx=tx, job_id="x")
    with pytest.raises(AdapterError):
        async with adapter.savepoint(tx=tx):
            pass
    page = await adapter.list_jobs(tx=None, filter=JobFilter(), after=None, limit=5)
    assert page.items == []


async def test_transaction_of_another_store_is_rejected() -> None:
    first, second = await migrated(), await migrated()
    async with first.transaction() as tx:
        with pytest.raises(AdapterError, match="not a transaction of this"):
            await second.create_jobs(tx=tx, jobs=[new_job()])


async def test_lock_job_without_a_transaction_is_rejected() -> None:
    adapter = await migrated()
    with pytest.raises(AdapterError, match="lock_job needs"):
        await adapter.lock_job(tx=None, lease=LEASE)  # type: ignore[arg-type]


async def test_own_transaction_inside_a_held_one_raises_instead_of_deadlocking() -> None:
    adapter = await migrated()
    async with adapter.transaction():
        with pytest.raises(AdapterError, match="already holds"):
            await adapter.get_job(tx=None, job_id="x")
        with pytest.raises(AdapterError, match="already holds"):
            async with adapter.transaction():
                pass


async def test_transactions_of_different_tasks_serialise() -> None:
    adapter = await migrated()
    order: list[str] = []
    inside = asyncio.Event()

    async def first() -> None:
        async with adapter.transaction() as tx:
            inside.set()
            await adapter.create_jobs(tx=tx, jobs=[new_job()])
            await asyncio.sleep(0.01)
            order.append("first")

    async def second() -> None:
        await inside.wait()
        async with adapter.transaction():
            order.append("second")

    await asyncio.gather(first(), second())
    assert order == ["first", "second"]


async def test_cancelled_transaction_rolls_back() -> None:
    adapter = await migrated()
    job = new_job()
    created = asyncio.Event()

    async def writer() -> None:
        async with adapter.transaction() as tx:
            await adapter.create_jobs(tx=tx, jobs=[job])
            created.set()
            await asyncio.sleep(60)

    task = asyncio.create_task(writer())
    await created.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await adapter.get_job(tx=None, job_id=job.id) is None


async def test_rollback_undo_actions_run_for_application_writes() -> None:
    adapter = await migrated()
    app_rows: list[str] = []

    class Failure(Exception):
        pass

    async def write(tx: MemoryTransaction, value: str) -> None:
        app_rows.append(value)
        tx.on_rollback(lambda: app_rows.remove(value))

    async with adapter.transaction() as tx:
        await write(tx, "kept")
        with pytest.raises(Failure):
            async with adapter.savepoint(tx=tx):
                await write(tx, "savepoint")
                raise Failure
        await write(tx, "after")
    with pytest.raises(Failure):
        async with adapter.transaction() as tx:
            await write(tx, "rolled back")
            raise Failure
    assert app_rows == ["kept", "after"]


async def test_failed_statement_in_a_transaction_is_undone_alone() -> None:
    adapter = await migrated()
    taken = new_job()
    await adapter.create_jobs(tx=None, jobs=[taken])
    fresh = new_job()
    async with adapter.transaction() as tx:
        with pytest.raises(AdapterError, match="already exists"):
            await adapter.create_jobs(tx=tx, jobs=[fresh, taken])
        assert await adapter.get_job(tx=tx, job_id=fresh.id) is None
    assert await adapter.get_job(tx=None, job_id=fresh.id) is None


async def test_naive_scheduled_at_is_rejected() -> None:
    adapter = await migrated()
    naive = datetime(2030, 1, 1)
    with pytest.raises(ValidationError, match="timezone-aware"):
        await adapter.create_jobs(tx=None, jobs=[new_job(scheduled_at=naive)])


# -- the clock hook ------------------------------------------------------------


async def test_moving_the_clock_makes_delayed_jobs_due() -> None:
    clock = FakeClock()
    adapter = await migrated(clock)
    (job,) = await adapter.create_jobs(tx=None, jobs=[new_job("q", delay_ms=5_000)])
    assert job.created_at == clock.now
    assert await adapter.time_until_next_job(tx=None, queues=["q"]) == 5.0
    assert await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1) == []
    clock.advance(seconds=5)
    assert await adapter.time_until_next_job(tx=None, queues=["q"]) == 0.0
    (acquired,) = await adapter.acquire_jobs(
        tx=None, queues=["q"], limit=1, owner="w", lease_ms=1_000
    )
    assert acquired.leased_until == clock.now + timedelta(seconds=1)


async def test_moving_the_clock_expires_leases() -> None:
    clock = FakeClock()
    adapter = await migrated(clock)
    await adapter.create_jobs(tx=None, jobs=[new_job("q", max_attempts=2)])
    assert (
        len(await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1_000))
        == 1
    )
    clock.advance(seconds=1)
    assert await adapter.reap_expired_leases(tx=None, limit=5) == []  # expiry is not past yet
    clock.advance(microseconds=1)
    (reaped,) = await adapter.reap_expired_leases(tx=None, limit=5)
    assert reaped.status is JobStatus.PENDING
    assert reaped.scheduled_at == clock.now
    assert (
        len(await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1_000))
        == 1
    )
    clock.advance(seconds=2)
    (reaped,) = await adapter.reap_expired_leases(tx=None, limit=5)
    assert reaped.status is JobStatus.FAILED
    assert reaped.error == LEASE_EXPIRED_ERROR
    assert reaped.completed_at == clock.now


# -- indexes stay right under churn --------------------------------------------


async def test_acquisition_order_survives_rollbacks_and_compaction() -> None:
    clock = FakeClock()
    adapter = await migrated(clock)
    jobs = [new_job("q", priority=n % 3) for n in range(300)]
    await adapter.create_jobs(tx=None, jobs=jobs)

    class Rollback(Exception):
        pass

    # Many acquire/rollback rounds leave stale index entries behind.
    for _ in range(20):
        with pytest.raises(Rollback):
            async with adapter.transaction() as tx:
                await adapter.acquire_jobs(tx=tx, queues=["q"], limit=50, owner="w", lease_ms=1)
                raise Rollback
    acquired = await adapter.acquire_jobs(
        tx=None, queues=["q"], limit=1_000, owner="w", lease_ms=1_000
    )
    expected = sorted(jobs, key=lambda job: (-job.priority, job.id))
    assert [job.id for job in acquired] == [job.id for job in expected]
    assert all(job.attempt == 1 for job in acquired)


async def test_deleted_and_recreated_chain_is_acquired_once() -> None:
    adapter = await migrated()
    job = new_job("q")
    await adapter.create_jobs(tx=None, jobs=[job])
    await adapter.delete_chains(tx=None, chain_ids=[job.chain_id])
    await adapter.create_jobs(tx=None, jobs=[job])
    acquired = await adapter.acquire_jobs(tx=None, queues=["q"], limit=5, owner="w", lease_ms=1)
    assert [record.id for record in acquired] == [job.id]


async def test_continuation_keeps_the_chain_linked() -> None:
    adapter = await migrated()
    await adapter.create_jobs(tx=None, jobs=[new_job("q")])
    (job,) = await adapter.acquire_jobs(tx=None, queues=["q"], limit=1, owner="w", lease_ms=1_000)
    nxt = await adapter.continue_job(tx=None, lease=job.lease, next_job=next_job(job, "q:2"))
    chain = await adapter.get_chain(tx=None, chain_id=job.chain_id)
    assert chain is not None and chain.last_job_id == nxt.id


# -- URL factories and entry points ---------------------------------------------


@pytest.mark.parametrize("url", ["memory://", "memory://jobs", "MEMORY://x"])
async def test_state_from_url(url: str) -> None:
    adapter = await memory_state.from_url(url)
    assert isinstance(adapter, MemoryStateAdapter)
    with pytest.raises(SchemaNotMigratedError):
        await adapter.check_schema()


@pytest.mark.parametrize("url", ["sqlite:///jobs.db", "memory:", "memoryx://", "inprocess://"])
async def test_state_from_url_rejects_other_urls(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        await memory_state.from_url(url)
    assert repr(url) in str(raised.value)


@pytest.mark.parametrize("url", ["memory://", "inprocess://", "inprocess://bus"])
async def test_notify_from_url(url: str) -> None:
    adapter = await memory_notify.from_url(url)
    assert isinstance(adapter, InProcessNotifyAdapter)
    await adapter.close()


@pytest.mark.parametrize("url", ["redis://localhost", "memory", "postgresql://x/y"])
async def test_notify_from_url_rejects_other_urls(url: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        await memory_notify.from_url(url)
    assert repr(url) in str(raised.value)


@pytest.mark.parametrize(
    ("group", "scheme", "factory"),
    [
        ("queuert.state", "memory", memory_state.from_url),
        ("queuert.notify", "memory", memory_notify.from_url),
        ("queuert.notify", "inprocess", memory_notify.from_url),
    ],
)
def test_entry_points_name_the_factories(group: str, scheme: str, factory: object) -> None:
    (entry,) = entry_points(group=group, name=scheme)
    assert entry.load() is factory


# -- in-process notify details --------------------------------------------------


async def test_listeners_do_not_run_inside_publish() -> None:
    adapter = InProcessNotifyAdapter()
    received: Recorder[str] = Recorder()
    await adapter.subscribe_chain_completed(chain_id=None, listener=received)
    await adapter.publish_chain_completed(chain_id="c1")
    assert received.items == []
    await received.wait_for(lambda items: items == ["c1"], what="the delivery")
    await adapter.close()


async def test_listener_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    adapter = InProcessNotifyAdapter()
    failing: Recorder[str] = Recorder(fail=True)
    healthy: Recorder[str] = Recorder()
    await adapter.subscribe_lease_lost(job_id="j1", listener=failing)
    await adapter.subscribe_lease_lost(job_id="j1", listener=healthy)
    with caplog.at_level(logging.ERROR, logger="queuert.notify"):
        await adapter.publish_lease_lost(job_id="j1")
        await healthy.wait_for(lambda items: items == ["j1"], what="the healthy delivery")
        await eventually(
            _async(lambda: any(r.name == "queuert.notify" for r in caplog.records)),
            what="the log record",
        )
    (record,) = [r for r in caplog.records if r.name == "queuert.notify"]
    assert record.exc_info is not None and "on purpose" in str(record.exc_info[1])
    await adapter.close()


async def test_slow_listener_does_not_hold_up_others() -> None:
    adapter = InProcessNotifyAdapter()
    release = asyncio.Event()
    fast: Recorder[str] = Recorder()

    async def slow(chain_id: str) -> None:
        await release.wait()

    await adapter.subscribe_chain_completed(chain_id=None, listener=slow)
    await adapter.subscribe_chain_completed(chain_id=None, listener=fast)
    await adapter.publish_chain_completed(chain_id="a")
    await adapter.publish_chain_completed(chain_id="b")
    await fast.wait_for(lambda items: items == ["a", "b"], what="both deliveries")
    release.set()
    await adapter.close()


async def test_listener_may_unsubscribe_itself() -> None:
    adapter = InProcessNotifyAdapter()
    calls: list[str] = []
    marker: Recorder[str] = Recorder()
    subscription: Subscription | None = None

    async def once(chain_id: str) -> None:
        calls.append(chain_id)
        assert subscription is not None
        await subscription.unsubscribe()

    subscription = await adapter.subscribe_chain_completed(chain_id=None, listener=once)
    await adapter.subscribe_chain_completed(chain_id=None, listener=marker)
    for chain_id in ("a", "b", "c"):
        await adapter.publish_chain_completed(chain_id=chain_id)
    await marker.wait_for(lambda items: len(items) == 3, what="the marker deliveries")
    assert calls == ["a"]
    await adapter.close()


async def test_subscribe_after_close_raises() -> None:
    adapter = InProcessNotifyAdapter()
    await adapter.close()
    assert adapter.closed
    with pytest.raises(AdapterError, match="closed"):
        await adapter.subscribe_job_scheduled(queues=["q"], listener=Recorder[ScheduledSignal]())
    with pytest.raises(AdapterError, match="closed"):
        await adapter.subscribe_chain_completed(chain_id=None, listener=Recorder[str]())
    with pytest.raises(AdapterError, match="closed"):
        await adapter.subscribe_lease_lost(job_id=None, listener=Recorder[str]())


async def test_close_cancels_a_listener_in_flight() -> None:
    adapter = InProcessNotifyAdapter()
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def blocking(chain_id: str) -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    await adapter.subscribe_chain_completed(chain_id=None, listener=blocking)
    await adapter.publish_chain_completed(chain_id="a")
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(adapter.close(), 5)
    assert cancelled.is_set()


async def test_expired_hint_may_wake_again() -> None:
    adapter = InProcessNotifyAdapter(hint_ttl_s=0.05)
    received: Recorder[ScheduledSignal] = Recorder()
    await adapter.subscribe_job_scheduled(queues=["q"], listener=received)
    await adapter.publish_job_scheduled(queue="q", count=1)
    signal = await received.wait_for_item(lambda s: True, what="the signal")
    assert await adapter.claim_wake(signal=signal) is True
    assert await adapter.claim_wake(signal=signal) is False
    await eventually(
        lambda: adapter.claim_wake(signal=signal), what="the hint to expire", timeout=5
    )
    await adapter.close()


def _async(probe: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
    async def call() -> Any:
        return probe()

    return call
