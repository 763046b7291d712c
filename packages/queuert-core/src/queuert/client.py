"""The application's entry point: start chains, read them back, await them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from queuert.blockers import blocker_ids
from queuert.dedup import dedup_requests
from queuert.definitions import ChainDef, QueueDef
from queuert.errors import (
    ChainFailedError,
    ChainHasDependentsError,
    JobNotFoundError,
    UnknownChainError,
    UnknownQueueError,
    ValidationError,
)
from queuert.ids import new_id
from queuert.instrumented import InstrumentedNotify, InstrumentedState
from queuert.metrics import Metrics
from queuert.notifications import PendingNotifications, pending_notifications
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter, Tx
from queuert.records import (
    ChainFilter,
    ChainRecord,
    DedupKey,
    DedupScope,
    JobFilter,
    JobRecord,
    JobStatus,
    NewJob,
    Page,
)
from queuert.slots import positional_builder

if TYPE_CHECKING:
    from queuert.worker import Worker

InT = TypeVar("InT")
OutT = TypeVar("OutT")

log = logging.getLogger("queuert")

_new_job = positional_builder(NewJob)


class ChainHandle(Generic[OutT]):
    """A started chain: its id and definition, to read or await it."""

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
        if not isinstance(delay, timedelta) or delay < timedelta(0):
            raise ValidationError(f"delay must be a non-negative timedelta, got {delay!r}")
        return int(delay.total_seconds() * 1000), None
    if start_at is not None and (not isinstance(start_at, datetime) or start_at.tzinfo is None):
        raise ValidationError(f"start_at must be a timezone-aware datetime, got {start_at!r}")
    return 0, start_at


def _check_limit(limit: object) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise ValidationError(f"limit must be an integer within 1..10000, got {limit!r}")
    return limit


def _statuses(
    status: JobStatus | str | Iterable[JobStatus | str] | None,
) -> tuple[JobStatus, ...] | None:
    if status is None:
        return None
    items = [status] if isinstance(status, str) else list(status)
    try:
        return tuple(JobStatus(s) for s in items)
    except ValueError as exc:
        raise ValidationError(f"unknown job status in {status!r}") from exc


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
        for chain in chains:
            if not isinstance(chain, ChainDef):
                raise ValidationError(f"chains must hold ChainDef objects, got {chain!r}")
            if chain.name in self.chains and self.chains[chain.name] is not chain:
                raise ValidationError(f"two different chains are named {chain.name!r}")
            self.chains[chain.name] = chain
            self.queues.update(chain.queues)

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
            raise UnknownChainError(f"chain {getattr(chain, 'name', chain)!r} is not registered")
        return chain

    def queue_def(self, name: str) -> QueueDef[Any, Any]:
        try:
            return self.queues[name]
        except KeyError:
            raise UnknownQueueError(f"queue {name!r} is not part of any registered chain") from None

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
        if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool)):
            raise ValidationError(f"priority must be an integer, got {priority!r}")
        name = chain.name
        encode = chain.input_codec.encode
        max_attempts = chain.retry.max_attempts
        if priority is None:
            priority = chain.priority
        jobs = []
        for value in inputs:
            job_id = new_id()
            # NewJob(id, chain_id, chain_name, queue, position, input, max_attempts,
            # priority, scheduled_at, delay_ms): the first job of its own chain.
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
        JSON-serialisable, bad schedule) before anything is written.

        With ``blockers`` (handles of other chains, at most
        :data:`~queuert.blockers.MAX_BLOCKERS`) the first job waits, ``blocked``, until
        every one of those chains has completed (see :mod:`queuert.blockers`); its
        handler reads their outputs in ``job.blockers`` (queues declared with
        ``load_blockers=True``) or through ``await ctx.blockers()``. Raises
        :class:`~queuert.errors.JobNotFoundError` naming a blocker chain that does not
        exist, with nothing written.

        With ``dedup_key`` no chain is started while a chain of this definition holds
        the key in ``dedup_scope`` (see :mod:`queuert.dedup`): the handle returned is
        then that chain's, with ``deduplicated`` true. It cannot be combined with
        ``blockers``.
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
        tx: Tx | None,
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
        if dedup is not None:
            if blocker_chain_ids is not None:
                raise ValidationError("a chain start takes a dedup key or blockers, not both")
            return await self._enqueue_deduplicated(tx, chain, jobs, dedup)
        if blocker_chain_ids is not None:
            return await self._enqueue_blocked(tx, chain, jobs, blocker_chain_ids)
        await self.state.create_jobs(tx=tx, jobs=jobs)
        # Delayed jobs are announced too: a woken worker finds nothing due yet and
        # sleeps until the earliest one is, instead of until its next poll.
        batch = PendingNotifications()
        batch.scheduled[chain.name] += len(jobs)
        await self.publish(batch)
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
        self, tx: Tx | None, chain: ChainDef[Any, OutT], jobs: list[NewJob], dedup: list[DedupKey]
    ) -> list[ChainHandle[OutT]]:
        holders = await self.state.create_deduplicated_jobs(tx=tx, jobs=jobs, dedup=dedup)
        started = sum(1 for job, holder in zip(jobs, holders, strict=True) if holder == job.id)
        if started:
            batch = PendingNotifications()
            batch.scheduled[chain.name] += started
            await self.publish(batch)
        return [
            ChainHandle(holder, chain, deduplicated=holder != job.id)
            for job, holder in zip(jobs, holders, strict=True)
        ]

    # -- reading back ---------------------------------------------------------------

    async def get_job(self, job_id: str, *, tx: Tx | None = None) -> JobRecord | None:
        """The job with this id, or ``None``."""
        return await self.state.get_job(tx=tx, job_id=job_id)

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
        queues = None if queue is None else ((queue,) if isinstance(queue, str) else tuple(queue))
        job_filter = JobFilter(statuses=_statuses(status), chain_id=chain_id, queues=queues)
        return await self.state.list_jobs(
            tx=tx, filter=job_filter, after=after, limit=_check_limit(limit)
        )

    async def get_chain(self, chain_id: str, *, tx: Tx | None = None) -> ChainRecord | None:
        """The chain with this id, or ``None``."""
        return await self.state.get_chain(tx=tx, chain_id=chain_id)

    async def list_chains(
        self,
        *,
        status: JobStatus | str | Iterable[JobStatus | str] | None = None,
        chain: ChainDef[Any, Any] | str | None = None,
        after: str | None = None,
        limit: int = 100,
        tx: Tx | None = None,
        dedup_key: str | None = None,
    ) -> Page[ChainRecord]:
        """One page of chains in creation order; pass ``page.next_cursor`` as
        ``after`` for the next one. ``dedup_key`` keeps the chains started with that
        deduplication key."""
        names = None if chain is None else ((chain if isinstance(chain, str) else chain.name),)
        if dedup_key is not None and not isinstance(dedup_key, str):
            raise ValidationError(f"dedup_key must be a string, got {dedup_key!r:.200}")
        chain_filter = ChainFilter(
            statuses=_statuses(status), chain_names=names, dedup_key=dedup_key
        )
        return await self.state.list_chains(
            tx=tx, filter=chain_filter, after=after, limit=_check_limit(limit)
        )

    async def cancel_chain(self, chain_id: str, *, tx: Tx | None = None) -> ChainRecord:
        """Cancel a chain whose current job has not started. Raises
        :class:`~queuert.errors.JobNotFoundError` for an unknown id."""
        record = await self.state.cancel_chain(tx=tx, chain_id=chain_id)
        if record is None:
            raise JobNotFoundError(f"no chain has id {chain_id!r}")
        if record.status is JobStatus.CANCELLED:
            batch = PendingNotifications(completed_chains=[chain_id])
            await self.publish(batch)
        return record

    async def delete_chains(
        self, chain_ids: Sequence[str], *, cascade: bool = False, tx: Tx | None = None
    ) -> int:
        """Delete chains with all their jobs; returns how many existed.

        A chain that jobs of other chains wait (or waited) on as a blocker is not
        deleted: :class:`~queuert.errors.ChainHasDependentsError` is raised, with
        nothing deleted, unless ``cascade`` is true, which deletes those chains too
        (and the chains depending on them, in turn); they count in the result."""
        ids = list(chain_ids)
        if not self.state.capabilities.blockers:
            return await self.state.delete_chains(tx=tx, chain_ids=ids)
        if tx is None:
            async with self.state.transaction() as own:
                return await self._delete_with_dependents(own, ids, cascade)
        return await self._delete_with_dependents(tx, ids, cascade)

    async def _delete_with_dependents(self, tx: Tx, ids: list[str], cascade: bool) -> int:
        doomed = dict.fromkeys(ids)
        frontier = list(doomed)
        while frontier:
            found = await self.state.list_dependent_chains(tx=tx, chain_ids=frontier)
            frontier = [chain_id for chain_id in found if chain_id not in doomed]
            if frontier and not cascade:
                raise ChainHasDependentsError(ids, frontier)
            doomed.update(dict.fromkeys(frontier))
        return await self.state.delete_chains(tx=tx, chain_ids=list(doomed))

    async def wait_for_chain(
        self, handle: ChainHandle[OutT], *, timeout: float = 60.0, poll_interval: float = 0.5
    ) -> OutT:
        """Wait until the chain ends and return its output, decoded to the chain's
        output type. Raises :class:`~queuert.errors.ChainFailedError` when it ends
        failed or cancelled, :class:`TimeoutError` after ``timeout`` seconds."""
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
                        return chain.output_codec.decode(record.output)
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
