"""The application's entry point: start chains, read them back, await them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from queuert.blockers import blocker_ids
from queuert.client_operations import ClientOperations
from queuert.client_reads import ClientReads
from queuert.dedup import dedup_requests
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
from queuert.limit_keys import job_key
from queuert.metrics import Metrics
from queuert.notifications import PendingNotifications, collector, pending_notifications
from queuert.observer import Observer
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter, Tx
from queuert.records import DedupKey, DedupScope, JobStatus, NewJob, ScheduleSlot
from queuert.schedules import CatchUp, ScheduleDef, ScheduleError, ScheduleInfo, list_schedules
from queuert.slots import positional_builder
from queuert.sqlalchemy_tx import is_session, on_commit
from queuert.validation import (
    MIN_POLL_INTERVAL,
    check_int32,
    check_many,
    check_seconds,
    check_text,
    check_time,
    delay_ms,
    show,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from queuert.worker import Worker

InT = TypeVar("InT")
OutT = TypeVar("OutT")

log = logging.getLogger("queuert")

_new_job = positional_builder(NewJob)


class ChainHandle(Generic[OutT]):
    """A started chain, as :meth:`Queuert.enqueue_job_chain` returns it.

    - ``id``: the chain's id, which is also the id of its first job. Store it (next
      to the application's row, in a response) to read the chain later with
      :meth:`Queuert.get_chain` or its jobs with ``list_jobs(chain_id=...)``.
    - ``chain``: the chain's definition, so that :meth:`Queuert.wait_for_chain`
      returns the output decoded to the chain's output type ``OutT``.
    """

    __slots__ = ("chain", "deduplicated", "id")

    def __init__(self, id: str, chain: ChainDef[Any, OutT], *, deduplicated: bool = False) -> None:
        self.id = id
        self.chain = chain
        self.deduplicated = deduplicated
        """True when no chain was started because an existing chain (this one) held
        the deduplication key."""

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


class Queuert(ClientReads[Tx], ClientOperations[Tx]):
    """A queuert application: the registered chains, a state adapter and an
    optional notify adapter (without one, workers poll).

    ``Tx`` is the state adapter's transaction type: the application's own
    driver object (an aiosqlite or asyncpg connection inside a transaction, a
    pymongo session).
    """

    observer: Observer | None = None
    """The instrumentation installed with :meth:`observe`, if any."""

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
        """Hold back the notifications of everything this task starts inside the block
        and send them when it exits normally, after the application's transaction
        committed. When the block raises (the transaction rolled back), nothing is
        sent. Only the task that opened the block collects: tasks started inside it
        (a worker, say) publish as they would outside it.

        Outside ``with_notify`` a call given the caller's ``tx`` publishes at once,
        before that transaction commits (and even if it rolls back), unless the
        state adapter carries signals in its own writes (PostgreSQL with its
        notifier on the same database: they leave with the commit). A worker woken
        by a signal whose job it cannot see yet looks again shortly after, so such
        a signal costs milliseconds, and one for a rolled-back transaction only an
        empty look."""
        mine = PendingNotifications(owner=asyncio.current_task())
        token = pending_notifications.set(mine)
        try:
            yield
        finally:
            pending_notifications.reset(token)
        await self.publish(mine)

    async def _send(self, batch: PendingNotifications) -> None:
        if self.notify is None:
            return
        # State writes never carry lease-lost signals, so these are always sent here.
        for job_id in batch.lease_lost:
            await self.notify.publish_lease_lost(job_id=job_id)
        if self._signals_in_writes:
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
        outer = collector()
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
            # priority, scheduled_at, delay_ms, trace_context, concurrency_key): the
            # first job of its own chain; the trace context is the observer's to set.
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
                    None,
                    job_key(chain, value),
                )
            )
        return jobs

    async def enqueue_job_chain(
        self,
        tx: Tx | AsyncSession | AsyncConnection | None,
        chain: ChainDef[InT, OutT],
        input: InT,
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
        blockers: Sequence[ChainHandle[Any]] | None = None,
        dedup_key: str | None = None,
        dedup_scope: DedupScope | str = "incomplete",
        dedup_window: timedelta | None = None,
    ) -> ChainHandle[OutT]:
        """Start a chain with its first job, inside the caller's transaction ``tx``
        (or in one of its own when ``tx`` is ``None``). The chain exists exactly when
        that transaction commits. It starts now, after ``delay`` or at
        ``start_at``.

        Raises :class:`~queuert.errors.ValidationError` subclasses (unknown chain,
        input that does not match the chain's input type or is not
        JSON-serialisable, bad schedule, a ``tx`` of the wrong type or no longer in
        an open transaction: :class:`~queuert.errors.InvalidTransactionError`)
        before anything is written.

        With ``blockers`` (handles of other chains, at most
        :data:`~queuert.blockers.MAX_BLOCKERS`) the first job waits, ``blocked``, until
        every one of those chains has completed (see :mod:`queuert.blockers`); its
        handler reads their outputs in ``job.blockers`` or ``await ctx.blockers()``.
        Raises :class:`~queuert.errors.JobNotFoundError` naming a blocker chain that
        does not exist, with nothing written.

        With ``dedup_key`` no chain is started while a chain of this definition holds
        the key in ``dedup_scope`` (see :mod:`queuert.dedup`): the handle returned is
        then that chain's, with ``deduplicated`` true. Combined with ``blockers`` the
        key is checked first: a deduplicated start writes no wait on the blockers.
        """
        handles = await self.enqueue_job_chains(
            tx,
            chain,
            [input],
            delay=delay,
            start_at=start_at,
            priority=priority,
            blockers=blockers,
            dedup_keys=None if dedup_key is None else [dedup_key],
            dedup_scope=dedup_scope,
            dedup_window=dedup_window,
        )
        return handles[0]

    async def enqueue_job_chains(
        self,
        tx: Tx | AsyncSession | AsyncConnection | None,
        chain: ChainDef[InT, OutT],
        inputs: Sequence[InT],
        *,
        delay: timedelta | None = None,
        start_at: datetime | None = None,
        priority: int | None = None,
        blockers: Sequence[ChainHandle[Any]] | None = None,
        dedup_keys: Sequence[str] | None = None,
        dedup_scope: DedupScope | str = "incomplete",
        dedup_window: timedelta | None = None,
    ) -> list[ChainHandle[OutT]]:
        """Start one chain per input in one batch write; same contract as
        :meth:`enqueue_job_chain`; ``dedup_keys`` gives one key per input (inputs
        sharing a key start one chain). Every input is validated before anything is
        written."""
        jobs = self._new_chain_jobs(chain, inputs, delay, start_at, priority)
        blocker_chain_ids = None if blockers is None else blocker_ids(blockers, self.chains)
        dedup = (
            None
            if dedup_keys is None
            else dedup_requests(dedup_keys, len(jobs), dedup_scope, dedup_window)
        )
        if not jobs:
            return []
        state_tx = await self._caller_tx(tx)
        if dedup is not None:
            return await self._enqueue_deduplicated(state_tx, chain, jobs, dedup, blocker_chain_ids)
        if blocker_chain_ids is not None:
            return await self._enqueue_blocked(state_tx, chain, jobs, blocker_chain_ids)
        await self.state.create_jobs(tx=state_tx, jobs=jobs)
        # Delayed jobs are announced too: a woken worker finds nothing due yet and
        # sleeps until the earliest one is, instead of until its next poll.
        batch = PendingNotifications()
        batch.scheduled[chain.name] += len(jobs)
        await self._publish_after(tx, batch)
        return [ChainHandle(job.id, chain) for job in jobs]

    async def _enqueue_blocked(
        self,
        tx: Tx | None,
        chain: ChainDef[Any, OutT],
        jobs: list[NewJob],
        blocker_chain_ids: list[str],
    ) -> list[ChainHandle[OutT]]:
        created = await self.state.create_blocked_jobs(
            tx=tx,
            jobs=jobs,
            blocker_chain_ids=blocker_chain_ids,
            run_on_blocker_failure=chain.on_blocker_failure == "run",
        )
        batch = PendingNotifications()
        for record in created:
            if record.status is JobStatus.PENDING:
                batch.scheduled[chain.name] += 1
            elif record.status.is_terminal:
                batch.completed_chains.append(record.chain_id)
        await self.publish(batch)
        return [ChainHandle(job.id, chain) for job in jobs]

    async def _enqueue_deduplicated(
        self,
        tx: Tx | None,
        chain: ChainDef[Any, OutT],
        jobs: list[NewJob],
        dedup: list[DedupKey],
        blocker_chain_ids: list[str] | None,
    ) -> list[ChainHandle[OutT]]:
        holders = await self.state.create_deduplicated_jobs(
            tx=tx,
            jobs=jobs,
            dedup=dedup,
            blocker_chain_ids=blocker_chain_ids,
            run_on_blocker_failure=chain.on_blocker_failure == "run",
        )
        started = sum(1 for job, holder in zip(jobs, holders, strict=True) if holder == job.id)
        # A started job that waits on blockers is announced too: a woken worker finds
        # nothing due and sleeps again, a cheaper miss than reading back each status.
        if started:
            batch = PendingNotifications()
            batch.scheduled[chain.name] += started
            await self.publish(batch)
        return [
            ChainHandle(holder, chain, deduplicated=holder != job.id)
            for job, holder in zip(jobs, holders, strict=True)
        ]

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
        retention: timedelta | None = None,
        prefetch: int | None = None,
    ) -> Worker[Tx]:
        """A worker for this application; register handlers with
        :meth:`Worker.handler`, then ``await worker.run()`` or ``async with worker``.
        ``prefetch`` bounds the worker's local queue of jobs acquired ahead of its
        free slots (default ``20 * concurrency``, ``0`` disables it; see
        :class:`~queuert.worker.Worker`)."""
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
            retention=retention,
            prefetch=prefetch,
        )

    async def close(self) -> None:
        """Close both adapters."""
        if self.notify is not None:
            await self.notify.close()
        await self.state.close()

    # -- the caller's transaction ----------------------------------------------

    async def _caller_tx(self, tx: object) -> Tx | None:
        """The state adapter's transaction object for the caller's ``tx`` (the driver
        connection behind an SQLAlchemy session), checked by the state adapter (None
        stays None): a transaction that ended, a closed connection or an object of the
        wrong type raises a :class:`~queuert.errors.InvalidTransactionError` before
        anything is written."""
        if tx is None:
            return None
        return await self.state.check_transaction(tx=await self.state.caller_transaction(tx))

    async def _publish_after(self, tx: object, batch: PendingNotifications) -> None:
        """:meth:`publish` ``batch``, or, for writes made in an SQLAlchemy session
        outside ``with_notify``, send it when the session's transaction commits
        (dropped when it rolls back)."""
        if self.notify is not None and pending_notifications.get() is None and is_session(tx):
            on_commit(tx, lambda: self._send(batch))  # type: ignore[arg-type]
            return
        await self.publish(batch)

    def observe(self, observer: Observer) -> None:
        """Install ``observer`` (see :mod:`queuert.observer`) for this application and
        its workers. Raises ValidationError when one is already installed."""
        if not isinstance(observer, Observer):
            raise ValidationError(f"observer must be an Observer, got {show(observer)}")
        if self.observer is not None:
            raise ValidationError("this application already has an observer")
        self.observer = observer
        if isinstance(self.state, InstrumentedState):
            self.state.observer = observer

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
