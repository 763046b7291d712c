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

from queuert.control_records import (
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import (
    TransactionClosedError,
    UnsupportedOperationError,
)
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state_workflows import Tx as Tx  # re-exported: adapters import it from here
from queuert.ports.state_workflows import WorkflowOperations
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
)


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
    - ``deduplication``: chain starts may carry a deduplication key
      (:meth:`StateAdapter.create_deduplicated_jobs`) and chains are filtered by it.
    - ``blockers``: jobs may wait on other chains (:meth:`StateAdapter.create_blocked_jobs`
      and the operations after it).
    - ``concurrency_limits``: :meth:`StateAdapter.acquire_limited_jobs` is supported.
    - ``schedules``: :meth:`StateAdapter.start_scheduled_chain` and the schedule slot
      reads are supported.
    - ``rate_limits``: :meth:`StateAdapter.acquire_rate_limited_jobs` is supported.
    - ``hand_off``: :meth:`StateAdapter.complete_job_and_hand_off` is supported.
    """

    row_locks: bool = True
    concurrent_transactions: bool = True
    savepoints: bool = True
    clock_precision_ms: float = 1.0
    native_notify: bool = False
    multi_process: bool = True
    blockers: bool = False
    deduplication: bool = False
    concurrency_limits: bool = False
    schedules: bool = False
    rate_limits: bool = False
    hand_off: bool = False


class StateAdapter(WorkflowOperations[Tx], ABC):
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
        of an earlier failed attempt, if any, stays recorded. Adapters with the
        ``blockers`` capability name in the returned record's
        :attr:`~queuert.records.JobRecord.unblocked_queues` the queue of every job
        this completion made ``pending``."""

    @abstractmethod
    async def continue_job(self, *, tx: Tx | None, lease: Lease, next_job: NewJob) -> JobRecord:
        """Complete the job by continuing its chain: mark it ``completed`` with
        ``next_job_id`` and insert ``next_job`` (at the next chain position) in the
        same transaction. Returns the new job. A second continuation of the same
        job fails. The error of an earlier failed attempt stays recorded."""

    async def complete_locked_job(self, *, tx: Tx, lease: Lease, output: str) -> JobRecord | None:
        """:meth:`complete_job` as the last write of ``tx``, a :meth:`leased_transaction`
        with ``lock`` on ``lease``: nothing else runs in ``tx`` afterwards. The job is
        locked, so the write may be sent together with the commit, but only through
        a documented mechanism of the driver (never by recognising how the driver
        words its ``COMMIT``); its errors then surface when the transaction block
        ends, and a rollback discards it. Returns the job as :meth:`complete_job`
        does, or ``None`` when the write leaves with the commit (the workers of jobs
        it unblocked then find them at their next poll). Defaults to
        :meth:`complete_job`."""
        return await self.complete_job(tx=tx, lease=lease, output=output)

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

    async def expect_concurrency(self, *, jobs: int) -> None:
        """Told by each worker as it starts: up to ``jobs`` more jobs of this process
        may hold a transaction of this adapter at once (claim, finalize), besides
        the workers' own single operations. An adapter that sizes a connection pool
        of its own may grow it to match (summing over workers); the default does
        nothing. Does not raise: an adapter that cannot grow keeps what it has."""
        return None

    # -- the caller's transaction ---------------------------------------------

    async def caller_transaction(self, tx: object) -> Tx:
        """The transaction object to run in for the ``tx`` a caller passed to a public
        entry point: ``tx`` itself when it is already this adapter's ``Tx``, or the
        driver connection behind an SQLAlchemy ``AsyncSession`` / ``AsyncConnection``
        of the same database, inside that object's current transaction (begun now
        when none is). Raises :class:`~queuert.errors.ForeignTransactionError` for an
        SQLAlchemy object this adapter cannot use. The default refuses every
        SQLAlchemy object and returns anything else unchanged."""
        from queuert import sqlalchemy_tx

        if sqlalchemy_tx.is_sqlalchemy(tx):
            raise sqlalchemy_tx.refuse(
                tx, type(self).__name__, "this adapter does not take SQLAlchemy objects"
            )
        return tx  # type: ignore[return-value]

    def sync_transaction(self, conn: object) -> Tx:
        """The caller's *synchronous* driver connection (a psycopg ``Connection``, a
        ``sqlite3.Connection``, ...) as a ``Tx`` on which this adapter's operations
        run inside that connection's current transaction and never suspend, so that
        :mod:`queuert.sync` can run them without an event loop (see
        :mod:`queuert.ports.sync`). Sends nothing to the database except, where the
        driver begins transactions implicitly and none is open yet, the ``BEGIN`` it
        would send itself. Raises :class:`~queuert.errors.InvalidTransactionError` for
        an object of another type and :class:`~queuert.errors.TransactionClosedError`
        for a closed connection or one in autocommit mode. The default raises
        :class:`~queuert.errors.UnsupportedOperationError`."""
        raise self._unsupported("sync_transaction")

    # -- control from outside a worker (optional: the defaults raise) ------------------

    def _unsupported(self, operation: str) -> UnsupportedOperationError:
        return UnsupportedOperationError(f"{type(self).__name__} does not implement {operation}")

    async def revoke_chain(self, *, tx: Tx | None, chain_id: str) -> RevokedChain:
        """Cancel the chain at any point: its last job, ``pending``, ``blocked`` or
        ``running``, becomes ``cancelled``; a running job's lease is cleared in the
        same write, so that its holder's heartbeat and finalize raise
        :class:`~queuert.errors.LeaseLostError` and commit nothing. Raises
        :class:`~queuert.errors.JobNotFoundError` for an unknown chain and
        :class:`~queuert.errors.ChainEndedError` (nothing written) for one that ended."""
        raise self._unsupported("revoke_chain")

    async def resume_job(self, *, tx: Tx | None, job_id: str) -> JobRecord:
        """Return a ``failed`` or ``cancelled`` job that is the last of its chain to
        ``pending``, due now, with a fresh attempt budget (``attempt`` 0, no
        ``completed_at``); its last error stays recorded until the next attempt ends.
        Raises :class:`~queuert.errors.JobNotFoundError` for an unknown job and
        :class:`~queuert.errors.JobStateError` (nothing written) for a job in any
        other state or one that continued its chain."""
        raise self._unsupported("resume_job")

    async def settle_job(
        self, *, tx: Tx | None, job_id: str, output: str | None, next_job: NewJob | None
    ) -> SettledJob:
        """Complete a job that has not ended (``pending``, ``blocked`` or ``running``)
        without a lease: with ``output`` it ends its chain, with ``next_job`` (at the
        next chain position) it continues it, exactly one of the two. A running job's
        lease is cleared in the same write. Raises
        :class:`~queuert.errors.JobNotFoundError` for an unknown job and
        :class:`~queuert.errors.ChainEndedError` (nothing written) for one that ended,
        so a second completion of the same job fails. With ``output``, adapters with
        the ``blockers`` capability name the queues of the jobs it unblocked in the
        returned job's :attr:`~queuert.records.JobRecord.unblocked_queues`, as
        :meth:`complete_job` does."""
        raise self._unsupported("settle_job")

    async def purge_chains(
        self,
        *,
        tx: Tx | None,
        ended_before: datetime,
        statuses: Sequence[JobStatus],
        limit: int,
    ) -> int:
        """Delete up to ``limit`` chains whose last job ended (``completed_at``) before
        ``ended_before`` with one of ``statuses`` (terminal), with all their jobs;
        returns how many were deleted."""
        raise self._unsupported("purge_chains")

    async def record_worker(self, *, tx: Tx | None, worker: WorkerInfo, forget_ms: int) -> None:
        """Insert or refresh the worker's record (``last_seen_at`` = now; ``started_at``
        kept from its first record), and delete the records of workers not seen for
        ``forget_ms``."""
        raise self._unsupported("record_worker")

    async def remove_worker(self, *, tx: Tx | None, worker_id: str) -> None:
        """Delete the worker's record (a worker that stops). No error when absent."""
        raise self._unsupported("remove_worker")

    async def list_workers(self, *, tx: Tx | None) -> list[WorkerRecord]:
        """Every recorded worker, by id."""
        raise self._unsupported("list_workers")

    async def count_jobs(self, *, tx: Tx | None) -> QueueCounts:
        """Job counts by queue and status, with the earliest ``scheduled_at`` of each
        queue's ``pending`` jobs, read with the database's now."""
        raise self._unsupported("count_jobs")

    async def queue_position(self, *, tx: Tx | None, job_id: str) -> QueuePosition | None:
        """The job, the database's now, and for a ``pending`` job the number of
        ``pending`` jobs of its queue due now that acquisition takes before it
        (earlier ``scheduled_at``, then higher priority, then smaller id). ``None``
        for an unknown job."""
        raise self._unsupported("queue_position")

    async def schema_sql(self) -> list[str]:
        """The statements :meth:`migrate` runs on an empty database, in order, with the
        records of the applied versions: for teams that apply schema changes with
        their own tools. Reads nothing from the database."""
        raise self._unsupported("schema_sql")

    # -- the caller's transaction ------------------------------------------------------

    async def is_transaction_open(self, *, tx: Tx) -> bool:
        """Whether ``tx`` is still inside an open transaction: ``False`` once it was
        committed or rolled back (by its block, or by statements sent through it) or
        its connection closed. Never raises, sends nothing to the database. Core asks
        before writing a finalize's job end, so that a callback that ended the
        transaction itself fails instead of having the end written in autocommit.
        The default answers ``True`` (it cannot tell), which the conformance suite's
        case of this operation fails: adapters override it."""
        return True

    async def check_transaction(self, *, tx: object) -> Tx:
        """The caller's ``tx`` as this adapter's operations take it, after checking it:
        raises :class:`~queuert.errors.InvalidTransactionError` when it is not a
        transaction object of this adapter's driver and
        :class:`~queuert.errors.TransactionClosedError` when it is no longer inside an
        open transaction. Sends nothing to the database. Core calls it once per
        public call given a ``tx``, before anything is written; the one place where
        an adapter accepts (and unwraps) other kinds of transaction objects. The
        default checks :meth:`is_transaction_open` only."""
        if not await self.is_transaction_open(tx=tx):  # type: ignore[arg-type]
            raise TransactionClosedError(
                f"{describe_transaction(tx)} is not inside an open transaction"
            )
        return tx  # type: ignore[return-value]


def describe_transaction(tx: object) -> str:
    """How error messages name a caller's transaction object: by its type only (its
    repr may be long, raise, or show connection details)."""
    cls = type(tx)
    return f"tx (a {cls.__module__}.{cls.__qualname__})"


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
