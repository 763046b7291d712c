"""The application's entry point: start chains, read them back, await them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from queuert.definitions import ChainDef, QueueDef
from queuert.errors import (
    ChainFailedError,
    InputValidationError,
    JobNotFoundError,
    UnknownChainError,
    UnknownQueueError,
    ValidationError,
)
from queuert.ids import new_id
from queuert.instrumented import InstrumentedNotify, InstrumentedState
from queuert.limits import concurrency_key_of
from queuert.metrics import Metrics
from queuert.notifications import PendingNotifications, pending_notifications
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter, Tx
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobFilter,
    JobRecord,
    JobStatus,
    NewJob,
    Page,
    ScheduleSlot,
)
from queuert.schedules import (
    CatchUp,
    ScheduleDef,
    ScheduleError,
    ScheduleInfo,
    list_schedules,
)
from queuert.slots import positional_builder
from queuert.validation import (
    MIN_POLL_INTERVAL,
    check_ids,
    check_int32,
    check_many,
    check_seconds,
    check_text,
    check_time,
    delay_ms,
    show,
)

if TYPE_CHECKING:
    from queuert.worker import Worker

InT = TypeVar("InT")
OutT = TypeVar("OutT")

log = logging.getLogger("queuert")

_new_job = positional_builder(NewJob)


class ChainHandle(Generic[OutT]):
    """A started chain: its id and definition, to read or await it."""

    __slots__ = ("chain", "id")

    def __init__(self, id: str, chain: ChainDef[Any, OutT]) -> None:
        self.id = id
        self.chain = chain

    def __repr__(self) -> str:
        return f"<chain {self.chain.name!r} {self.id}>"


def _check_schedule(
    delay: timedelta | None, start_at: datetime | None
) -> tuple[int, datetime | None]:
    if delay is not None and start_at is not None:
        raise ValidationError("give either delay or start_at, not both")
    if delay is not None:
        return delay_ms("delay", delay), None
    if start_at is not None:
        return 0, check_time("start_at", start_at)
    return 0, None


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


class Queuert(Generic[Tx]):
    """A queuert application: the registered chains, a state adapter and an
    optional notify adapter (without one, workers poll).

    ``Tx`` is the state adapter's transaction type: the application's own
    driver object (an aiosqlite or asyncpg connection inside a transaction, a
    pymongo session).
    """

    def __init__(
        self,
        *,
        state: StateAdapter[Tx],
        notify: NotifyAdapter | None = None,
        chains: Sequence[ChainDef[Any, Any]],
    ) -> None:
        if not isinstance(state, StateAdapter):
            raise ValidationError(f"state must be a StateAdapter, got {state!r}")
        if notify is not None and not isinstance(notify, NotifyAdapter):
            raise ValidationError(f"notify must be a NotifyAdapter or None, got {notify!r}")
        self.metrics = Metrics()
        self.state: StateAdapter[Tx] = InstrumentedState(state, self.metrics)
        self.notify: NotifyAdapter | None = (
            InstrumentedNotify(notify, self.metrics) if notify is not None else None
        )
        # Signals the state adapter's writes carry themselves (in their transaction).
        self._signals_in_writes = (
            notify is not None and state.capabilities.native_notify and state.bind_notify(notify)
        )
        self.chains: dict[str, ChainDef[Any, Any]] = {}
        self.queues: dict[str, QueueDef[Any, Any]] = {}
        for chain in check_many("chains", chains):
            if not isinstance(chain, ChainDef):
                raise ValidationError(f"chains must hold ChainDef objects, got {chain!r}")
            if chain.name in self.chains and self.chains[chain.name] is not chain:
                raise ValidationError(f"two different chains are named {chain.name!r}")
            self.chains[chain.name] = chain
            self.queues.update(chain.queues)
        self.schedules: dict[str, ScheduleDef] = {}

    @classmethod
    async def from_url(
        cls,
        *,
        chains: Sequence[ChainDef[Any, Any]],
        state: str | None = None,
        notify: str | None = None,
    ) -> Queuert[Any]:
        """Build an application from adapter URLs (``sqlite:///jobs.db``,
        ``postgresql://...``, ``redis://...``, ``memory://``, ``none``). A URL left
        ``None`` is read from ``QUEUERT_STATE_URL`` / ``QUEUERT_NOTIFY_URL``.
        Raises :class:`~queuert.errors.ConfigurationError` for a bad URL or a scheme
        whose adapter is not installed."""
        from queuert import urls

        state_adapter = await urls.state_from_url(state)
        notify_adapter = await urls.notify_from_url(notify)
        return cls(state=state_adapter, notify=notify_adapter, chains=chains)

    # -- lookup -------------------------------------------------------------

    def chain_def(self, chain: ChainDef[InT, OutT]) -> ChainDef[InT, OutT]:
        """``chain`` if it is registered; raises UnknownChainError otherwise."""
        if not isinstance(chain, ChainDef) or self.chains.get(chain.name) is not chain:
            raise UnknownChainError(
                f"chain {show(getattr(chain, 'name', chain))} is not registered"
            )
        return chain

    def queue_def(self, name: str) -> QueueDef[Any, Any]:
        try:
            return self.queues[name]
        except KeyError:
            raise UnknownQueueError(
                f"queue {show(name)} is not part of any registered chain"
            ) from None

    # -- notifications --------------------------------------------------------

    @asynccontextmanager
    async def with_notify(self) -> AsyncIterator[None]:
        """Hold back the notifications of everything started inside the block and
        send them when it exits normally, after the application's transaction
        committed. When the block raises (the transaction rolled back), nothing is
        sent."""
        mine = PendingNotifications()
        token = pending_notifications.set(mine)
        try:
            yield
        finally:
            pending_notifications.reset(token)
        await self.publish(mine)

    async def _send(self, batch: PendingNotifications) -> None:
        if self.notify is None or self._signals_in_writes:
            return
        for queue, count in batch.scheduled.items():
            await self.notify.publish_job_scheduled(queue=queue, count=count)
        for chain_id in batch.completed_chains:
            await self.notify.publish_chain_completed(chain_id=chain_id)

    async def publish(self, batch: PendingNotifications) -> None:
        """Send ``batch`` now, or hold it for the enclosing ``with_notify`` block to
        send when it exits (after the application's transaction committed)."""
        if self.notify is None:
            return
        outer = pending_notifications.get()
        if outer is not None:
            outer.merge(batch)
        else:
            await self._send(batch)

    # -- starting chains ---------------------------------------------------------

    def _new_chain_jobs(
        self,
        chain: ChainDef[InT, OutT],
        inputs: Sequence[InT],
        delay: timedelta | None,
        start_at: datetime | None,
        priority: int | None,
    ) -> list[NewJob]:
        chain = self.chain_def(chain)
        delay_ms, scheduled_at = _check_schedule(delay, start_at)
        if priority is not None:
            check_int32("priority", priority)
        inputs = check_many("inputs", inputs)
        name = chain.name
        encode = chain.input_codec.encode
        max_attempts = chain.retry.max_attempts
        if priority is None:
            priority = chain.priority
        jobs = []
        for value in inputs:
            job_id = new_id()
            # NewJob(id, chain_id, chain_name, queue, position, input, max_attempts,
            # priority, scheduled_at, delay_ms, concurrency_key): the first job of its
            # own chain.
            jobs.append(
                _new_job(
                    job_id,
                    job_id,
                    name,
                    name,
                    0,
                    encode(value),
                    max_attempts,
                    priority,
                    scheduled_at,
                    delay_ms,
                    concurrency_key_of(name, chain.limit, value),
                )
            )
        return jobs

    async def enqueue_job_chain(
        self,
        tx: Tx | None,
        chain: ChainDef[InT, OutT],
        input: InT,
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
    ) -> ChainHandle[OutT]:
        """Start a chain with its first job, inside the caller's transaction ``tx``
        (or in one of its own when ``tx`` is ``None``). The chain exists exactly when
        that transaction commits. It starts now, after ``delay`` or at
        ``start_at``.

        Raises :class:`~queuert.errors.ValidationError` subclasses (unknown chain,
        input that does not match the chain's input type or is not
        JSON-serialisable, bad schedule) before anything is written.
        """
        handles = await self.enqueue_job_chains(
            tx, chain, [input], delay=delay, start_at=start_at, priority=priority
        )
        return handles[0]

    async def enqueue_job_chains(
        self,
        tx: Tx | None,
        chain: ChainDef[InT, OutT],
        inputs: Sequence[InT],
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
    ) -> list[ChainHandle[OutT]]:
        """Start one chain per input in one batch write; same contract as
        :meth:`enqueue_job_chain`. Every input is validated before anything is
        written."""
        jobs = self._new_chain_jobs(chain, inputs, delay, start_at, priority)
        if not jobs:
            return []
        await self.state.create_jobs(tx=tx, jobs=jobs)
        # Delayed jobs are announced too: a woken worker finds nothing due yet and
        # sleeps until the earliest one is, instead of until its next poll.
        batch = PendingNotifications()
        batch.scheduled[chain.name] += len(jobs)
        await self.publish(batch)
        return [ChainHandle(job.id, chain) for job in jobs]

    # -- reading back ---------------------------------------------------------------

    async def get_job(self, job_id: str, *, tx: Tx | None = None) -> JobRecord | None:
        """The job with this id, or ``None``."""
        return await self.state.get_job(tx=tx, job_id=check_text("job_id", job_id))

    async def list_jobs(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        chain_id: str | None = None,
        queue: str | Iterable[str] | None = None,
        after: str | None = None,
        limit: int = 100,
        tx: Tx | None = None,
    ) -> Page[JobRecord]:
        """One page of jobs in creation order; pass ``page.next_cursor`` as
        ``after`` for the next one."""
        queues = None
        if queue is not None:
            names = [queue] if isinstance(queue, str) else check_many("queue", queue)
            queues = tuple(check_text("queue", name) for name in names)
        job_filter = JobFilter(
            statuses=_statuses(status), chain_id=_optional_id("chain_id", chain_id), queues=queues
        )
        return await self.state.list_jobs(
            tx=tx, filter=job_filter, after=_optional_id("after", after), limit=_check_limit(limit)
        )

    async def get_chain(self, chain_id: str, *, tx: Tx | None = None) -> ChainRecord | None:
        """The chain with this id, or ``None``."""
        return await self.state.get_chain(tx=tx, chain_id=check_text("chain_id", chain_id))

    async def list_chains(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        chain: ChainDef[Any, Any] | str | None = None,
        after: str | None = None,
        limit: int = 100,
        tx: Tx | None = None,
    ) -> Page[ChainRecord]:
        """One page of chains in creation order; pass ``page.next_cursor`` as
        ``after`` for the next one."""
        names = None
        if chain is not None:
            name = chain.name if isinstance(chain, ChainDef) else chain
            names = (check_text("chain", name),)
        chain_filter = ChainFilter(statuses=_statuses(status), chain_names=names)
        return await self.state.list_chains(
            tx=tx,
            filter=chain_filter,
            after=_optional_id("after", after),
            limit=_check_limit(limit),
        )

    async def cancel_chain(self, chain_id: str, *, tx: Tx | None = None) -> ChainRecord:
        """Cancel a chain whose current job has not started. Raises
        :class:`~queuert.errors.JobNotFoundError` for an unknown id."""
        record = await self.state.cancel_chain(tx=tx, chain_id=check_text("chain_id", chain_id))
        if record is None:
            raise JobNotFoundError(f"no chain has id {chain_id!r}")
        if record.status is JobStatus.CANCELLED:
            batch = PendingNotifications(completed_chains=[chain_id])
            await self.publish(batch)
        return record

    async def delete_chains(self, chain_ids: Sequence[str], *, tx: Tx | None = None) -> int:
        """Delete chains with all their jobs; returns how many existed."""
        return await self.state.delete_chains(tx=tx, chain_ids=check_ids("chain_ids", chain_ids))

    async def wait_for_chain(
        self, handle: ChainHandle[OutT], *, timeout: float = 60.0, poll_interval: float = 0.5
    ) -> OutT:
        """Wait until the chain ends and return its output, decoded to the chain's
        output type. Raises :class:`~queuert.errors.ChainFailedError` when it ends
        failed or cancelled, :class:`TimeoutError` after ``timeout`` seconds.
        ``timeout`` must be finite and positive, ``poll_interval`` finite and at
        least :data:`~queuert.validation.MIN_POLL_INTERVAL` (ValidationError
        otherwise)."""
        timeout = check_seconds("timeout", timeout)
        poll_interval = check_seconds("poll_interval", poll_interval, minimum=MIN_POLL_INTERVAL)
        if not isinstance(handle, ChainHandle):
            raise ValidationError(f"handle must be a ChainHandle, got {show(handle)}")
        chain = self.chain_def(handle.chain)
        done = asyncio.Event()

        async def on_completed(_chain_id: str) -> None:
            done.set()

        subscription = (
            await self.notify.subscribe_chain_completed(chain_id=handle.id, listener=on_completed)
            if self.notify is not None
            else None
        )
        try:
            async with asyncio.timeout(timeout):
                while True:
                    record = await self.state.get_chain(tx=None, chain_id=handle.id)
                    if record is None:
                        raise JobNotFoundError(f"no chain has id {handle.id!r}")
                    if record.status is JobStatus.COMPLETED:
                        assert record.output is not None
                        try:
                            return chain.output_codec.decode(record.output)
                        except Exception as exc:
                            raise InputValidationError(
                                f"the stored output of chain {handle.id!r} does not read back "
                                f"as the output of chain {chain.name!r}: {show(exc)}"
                            ) from exc
                    if record.status.is_terminal:
                        raise ChainFailedError(handle.id, record.status.value, record.error)
                    done.clear()
                    try:
                        async with asyncio.timeout(poll_interval):
                            await done.wait()
                    except TimeoutError:
                        pass
        finally:
            if subscription is not None:
                await subscription.unsubscribe()

    # -- life cycle ------------------------------------------------------------

    async def migrate(self) -> None:
        """Create or upgrade the state adapter's schema (idempotent)."""
        await self.state.migrate()

    def worker(
        self,
        *,
        concurrency: int = 10,
        queues: Sequence[QueueDef[Any, Any]] | None = None,
        lease_ms: int = 30_000,
        poll_interval: float = 1.0,
        reaper_interval: float | None = None,
        worker_id: str | None = None,
        shutdown_timeout: float = 30.0,
    ) -> Worker[Tx]:
        """A worker for this application; register handlers with
        :meth:`Worker.handler`, then ``await worker.run()`` or ``async with worker``."""
        from queuert.worker import Worker

        return Worker(
            self,
            concurrency=concurrency,
            queues=queues,
            lease_ms=lease_ms,
            poll_interval=poll_interval,
            reaper_interval=reaper_interval,
            worker_id=worker_id,
            shutdown_timeout=shutdown_timeout,
        )

    async def close(self) -> None:
        """Close both adapters."""
        if self.notify is not None:
            await self.notify.close()
        await self.state.close()

    # -- schedules ----------------------------------------------------------------------

    def schedule(
        self,
        name: str,
        chain: ChainDef[InT, OutT],
        *,
        cron: str | None = None,
        every: timedelta | None = None,
        input: InT | Callable[[datetime], InT],
        timezone: str = "UTC",
        catch_up: CatchUp = "latest",
    ) -> ScheduleDef:
        """Declare a recurring schedule: every worker of this app starts ``chain`` once
        per slot of ``cron`` (in ``timezone``) or of ``every``, with ``input`` or
        ``input(slot_time)``; see :mod:`queuert.schedules`. Raises
        :class:`~queuert.schedules.ScheduleError` for a bad name, expression, interval,
        time zone or catch-up policy, or a name already declared, and
        :class:`~queuert.errors.UnknownChainError` for a chain not registered."""
        chain = self.chain_def(chain)
        defined = ScheduleDef(
            name,
            chain,
            cron=cron,
            every=every,
            input=input,
            timezone=timezone,
            catch_up=catch_up,
        )
        if name in self.schedules:
            raise ScheduleError(f"schedule {name!r} is already declared")
        self.schedules[name] = defined
        return defined

    async def list_schedules(self) -> list[ScheduleInfo]:
        """Each declared schedule with its next slot and the last slot started (and
        its chain), as the database records it."""
        return await list_schedules(self)

    async def schedule_slot(self, chain_id: str, *, tx: Tx | None = None) -> ScheduleSlot | None:
        """The schedule slot ``chain_id`` was started for (a handler reads its slot time
        here), or ``None`` when a schedule did not start it."""
        return await self.state.get_chain_schedule_slot(
            tx=tx, chain_id=check_text("chain_id", chain_id)
        )
