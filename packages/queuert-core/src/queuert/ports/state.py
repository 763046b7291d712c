"""The storage port.

A state adapter speaks the job life cycle, never SQL. Every operation is
``async``, keyword-only and takes ``tx``: the caller's own transaction object
(the driver's type, ``Tx``) to run inside it, or ``None`` to run in a
transaction of its own that commits before the call returns.

Operations guarded by a :class:`~queuert.records.Lease` succeed only while the
job is ``running`` with that owner and attempt; otherwise they raise
:class:`~queuert.errors.LeaseLostError` and change nothing.

Adapters translate driver errors: a failure that may pass on retry (lost
connection, serialisation failure, database busy) raises
:class:`~queuert.errors.TransientStateError`; a schema that is missing or too
old raises :class:`~queuert.errors.SchemaNotMigratedError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from queuert.errors import ConfigurationError
from queuert.ports.notify import NotifyAdapter
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
    Lease,
    NewJob,
    Page,
    ScheduleSlot,
)

Tx = TypeVar("Tx")


@dataclass(frozen=True, slots=True)
class StateCapabilities:
    """What a state adapter can do; core and the conformance suite branch on these,
    never on the adapter's class.

    - ``row_locks``: a locked read blocks other writers of the job until commit.
    - ``concurrent_transactions``: several transactions may be open at once
      (false for a single-writer store whose transactions serialise).
    - ``savepoints``: :meth:`StateAdapter.savepoint` is supported.
    - ``clock_precision_ms``: resolution of stored timestamps.
    - ``native_notify``: the adapter's writes can carry a notifier's signals in their
      own transaction (see :meth:`StateAdapter.bind_notify`).
    - ``multi_process``: several processes may share the store.
    - ``concurrency_limits``: :meth:`StateAdapter.acquire_limited_jobs` is supported.
    - ``schedules``: :meth:`StateAdapter.start_scheduled_chain` and the schedule slot
      reads are supported.
    """

    row_locks: bool = True
    concurrent_transactions: bool = True
    savepoints: bool = True
    clock_precision_ms: float = 1.0
    native_notify: bool = False
    multi_process: bool = True
    concurrency_limits: bool = False
    schedules: bool = False


class StateAdapter(ABC, Generic[Tx]):
    """The storage port, generic over the driver's transaction type ``Tx``."""

    capabilities: StateCapabilities = StateCapabilities()

    # -- transactions -----------------------------------------------------

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Open a transaction of the adapter's own. Commits when the block exits
        normally, rolls back when it raises."""

    def leased_transaction(self, *, lease: Lease, lock: bool) -> AbstractAsyncContextManager[Tx]:
        """A transaction of the adapter's own, as :meth:`transaction`, that first verifies
        ``lease`` (:meth:`verify_lease`) or, with ``lock``, verifies it and locks the job
        (:meth:`lock_job`) before the block runs. Raises
        :class:`~queuert.errors.LeaseLostError`, with nothing committed and the block
        not run, when the lease is gone. The default composes those operations;
        override it where the check can travel with the start of the transaction."""
        return _leased_transaction(self, lease, lock)

    @abstractmethod
    def savepoint(self, *, tx: Tx) -> AbstractAsyncContextManager[Tx]:
        """Open a savepoint inside ``tx``. An exception inside the block rolls back
        only the savepoint's writes and propagates; the outer transaction can go on."""

    # -- schema ------------------------------------------------------------

    @abstractmethod
    async def migrate(self) -> None:
        """Create or upgrade the schema. Idempotent; safe when several processes
        run it at once."""

    @abstractmethod
    async def check_schema(self) -> None:
        """Raise :class:`~queuert.errors.SchemaNotMigratedError` (naming the command
        to run) unless the schema is at this adapter's version."""

    async def close(self) -> None:  # optional hook, a no-op by default
        """Release connections the adapter opened itself. Idempotent."""

    def bind_notify(self, notify: NotifyAdapter) -> bool:
        """Offer to send ``notify``'s job-scheduled and chain-completed signals from
        inside this adapter's own writes; return whether it will.

        Called once by :class:`~queuert.Queuert` when ``capabilities.native_notify``
        is set. An adapter that accepts sends, from every write that schedules a
        job (create, continue, reschedule, reap) or ends a chain (complete, fail,
        reap, cancel), the signals ``notify``'s subscribers would receive had core
        published them; they are delivered when the write's transaction commits and
        dropped when it rolls back, and core then publishes neither signal itself.
        The default declines."""
        return False

    # -- writing jobs -------------------------------------------------------

    @abstractmethod
    async def create_jobs(self, *, tx: Tx | None, jobs: Sequence[NewJob]) -> Sequence[JobRecord]:
        """Insert the jobs (``pending``) in one batch and return them in order."""

    @abstractmethod
    async def acquire_jobs(
        self, *, tx: Tx | None, queues: Sequence[str], limit: int, owner: str, lease_ms: int
    ) -> list[JobRecord]:
        """Lease up to ``limit`` eligible jobs of ``queues``: ``pending`` with
        ``scheduled_at`` not after the database's now, oldest ``scheduled_at`` first
        (then higher priority, then id). Each becomes ``running`` with
        ``attempt + 1``, ``leased_by = owner`` and ``leased_until = now + lease_ms``.
        Two concurrent calls never return the same job."""

    @abstractmethod
    async def renew_lease(self, *, tx: Tx | None, lease: Lease, lease_ms: int) -> datetime:
        """Extend the lease to ``now + lease_ms`` and return the new expiry."""

    @abstractmethod
    async def lock_job(self, *, tx: Tx, lease: Lease) -> JobRecord:
        """Verify the lease inside ``tx`` and lock the job until ``tx`` ends, so that no
        reaper or other worker can change it meanwhile."""

    async def verify_lease(self, *, tx: Tx, lease: Lease) -> JobRecord:
        """Verify the lease inside ``tx`` without locking the job (a claim only reads).
        Raises LeaseLostError like :meth:`lock_job`. Defaults to :meth:`lock_job`;
        override it where a lock costs more than a read (a row lock is a write)."""
        return await self.lock_job(tx=tx, lease=lease)

    @abstractmethod
    async def complete_job(self, *, tx: Tx | None, lease: Lease, output: str) -> JobRecord:
        """End the job, and with it the chain, ``completed`` with ``output``. The error
        of an earlier failed attempt, if any, stays recorded."""

    @abstractmethod
    async def continue_job(self, *, tx: Tx | None, lease: Lease, next_job: NewJob) -> JobRecord:
        """Complete the job by continuing its chain: mark it ``completed`` with
        ``next_job_id`` and insert ``next_job`` (at the next chain position) in the
        same transaction. Returns the new job. A second continuation of the same
        job fails. The error of an earlier failed attempt stays recorded."""

    async def complete_locked_job(self, *, tx: Tx, lease: Lease, output: str) -> None:
        """:meth:`complete_job` as the last write of ``tx``, a :meth:`leased_transaction`
        with ``lock`` on ``lease``: nothing else runs in ``tx`` afterwards. The job is
        locked, so the write may travel with the commit: its errors then surface when
        the transaction block ends, and a rollback discards it. Defaults to
        :meth:`complete_job`."""
        await self.complete_job(tx=tx, lease=lease, output=output)

    async def continue_locked_job(self, *, tx: Tx, lease: Lease, next_job: NewJob) -> None:
        """:meth:`continue_job` as the last write of ``tx``, under the same terms as
        :meth:`complete_locked_job`. Defaults to :meth:`continue_job`."""
        await self.continue_job(tx=tx, lease=lease, next_job=next_job)

    @abstractmethod
    async def reschedule_job(
        self,
        *,
        tx: Tx | None,
        lease: Lease,
        error: JobError | None,
        delay_ms: int = 0,
        scheduled_at: datetime | None = None,
        refund_attempt: bool = False,
    ) -> JobRecord:
        """Return the job to ``pending`` at ``scheduled_at`` (or now + ``delay_ms``),
        clear its lease and record ``error``. With ``refund_attempt`` the attempt
        that ends here is not counted."""

    @abstractmethod
    async def fail_job(self, *, tx: Tx | None, lease: Lease, error: JobError) -> JobRecord:
        """End the job, and with it the chain, ``failed`` with ``error``."""

    @abstractmethod
    async def reap_expired_leases(self, *, tx: Tx | None, limit: int) -> list[JobRecord]:
        """Return up to ``limit`` ``running`` jobs whose lease expired to ``pending``
        (due now), with :data:`~queuert.records.LEASE_EXPIRED_ERROR` recorded; a job
        whose attempts are exhausted becomes ``failed`` instead. Returns the
        changed jobs as they are now."""

    @abstractmethod
    async def cancel_chain(self, *, tx: Tx | None, chain_id: str) -> ChainRecord | None:
        """Cancel the chain's last job if it is ``pending`` or ``blocked``. Returns the
        chain as it is now, ``None`` when it does not exist."""

    @abstractmethod
    async def time_until_next_job(self, *, tx: Tx | None, queues: Sequence[str]) -> float | None:
        """Seconds until the earliest ``pending`` job of ``queues`` becomes eligible
        (``0.0`` when one is eligible now), or ``None`` when there is none."""

    # -- reading ---------------------------------------------------------------

    @abstractmethod
    async def get_job(self, *, tx: Tx | None, job_id: str) -> JobRecord | None:
        """The job with this id, or ``None``."""

    @abstractmethod
    async def list_jobs(
        self, *, tx: Tx | None, filter: JobFilter, after: str | None, limit: int
    ) -> Page[JobRecord]:
        """Jobs matching ``filter`` with id greater than ``after``, in id order."""

    @abstractmethod
    async def get_chain(self, *, tx: Tx | None, chain_id: str) -> ChainRecord | None:
        """The chain with this id, or ``None``."""

    @abstractmethod
    async def list_chains(
        self, *, tx: Tx | None, filter: ChainFilter, after: str | None, limit: int
    ) -> Page[ChainRecord]:
        """Chains matching ``filter`` with id greater than ``after``, in id order."""

    @abstractmethod
    async def delete_chains(self, *, tx: Tx | None, chain_ids: Sequence[str]) -> int:
        """Delete the chains and all their jobs; returns how many chains existed."""

    # -- limits ----------------------------------------------------------------------

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
        """Lease up to ``limit`` eligible jobs of ``queue``, as :meth:`acquire_jobs`,
        without ever leaving more than ``concurrency_limit`` jobs of ``queue`` running
        with a valid lease (``leased_until`` after now) or, with ``per_key``, more than
        ``concurrency_limit`` per :attr:`~queuert.records.NewJob.concurrency_key` (jobs
        without a key count as one key). Jobs over the limit are skipped, not waited
        for: they stay ``pending`` with their attempt unchanged, and a later job of
        another key is taken in their place. Holds across concurrent calls from any
        process: two calls never together exceed the limit. Adapters declaring
        ``capabilities.concurrency_limits`` implement it; the default raises
        :class:`~queuert.errors.ConfigurationError`."""
        raise ConfigurationError(
            f"{type(self).__name__} does not support concurrency limits "
            f"(queue {queue!r} declares one)"
        )

    # -- schedules -------------------------------------------------------------------

    async def start_scheduled_chain(
        self, *, tx: Tx | None, schedule: str, slot_time: datetime, job: NewJob
    ) -> bool:
        """Record the slot (``schedule``, ``slot_time``) with ``job``'s chain and create
        ``job`` in the same transaction, unless the slot is already recorded: then
        write nothing and return ``False``. Concurrent calls for one slot, from any
        process, create exactly one chain. Adapters declaring
        ``capabilities.schedules`` implement it and the two reads below; the
        defaults raise :class:`~queuert.errors.ConfigurationError`."""
        raise ConfigurationError(f"{type(self).__name__} does not support schedules")

    async def get_last_schedule_slot(self, *, tx: Tx | None, schedule: str) -> ScheduleSlot | None:
        """The latest recorded slot of ``schedule``, or ``None``."""
        raise ConfigurationError(f"{type(self).__name__} does not support schedules")

    async def get_chain_schedule_slot(self, *, tx: Tx | None, chain_id: str) -> ScheduleSlot | None:
        """The slot the chain was started for, or ``None`` (not started by a schedule)."""
        raise ConfigurationError(f"{type(self).__name__} does not support schedules")


@asynccontextmanager
async def _leased_transaction(
    adapter: StateAdapter[Tx], lease: Lease, lock: bool
) -> AsyncIterator[Tx]:
    async with adapter.transaction() as tx:
        if lock:
            await adapter.lock_job(tx=tx, lease=lease)
        else:
            await adapter.verify_lease(tx=tx, lease=lease)
        yield tx
