"""The storage port's optional operations for workflows: blockers, deduplicated
starts, concurrency limits (and the hand-off of a place under one), rate limits and
schedules. Each group belongs to a capability of
:class:`~queuert.ports.state.StateCapabilities`; the defaults raise, so that an
adapter implements only the groups it declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Generic, TypeVar

from queuert.errors import AdapterError, ConfigurationError
from queuert.rate_records import RateAcquisition
from queuert.records import (
    BlockerRecord,
    DedupKey,
    JobRecord,
    Lease,
    NewJob,
    ScheduleSlot,
)

Tx = TypeVar("Tx")


class WorkflowOperations(Generic[Tx]):
    """The optional operations of :class:`~queuert.ports.state.StateAdapter`."""

    # -- blockers (capability ``blockers``) --------------------------------------

    async def create_blocked_jobs(
        self,
        *,
        tx: Tx | None,
        jobs: Sequence[NewJob],
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> Sequence[JobRecord]:
        """Insert ``jobs`` as :meth:`create_jobs` does, each waiting on the chains
        ``blocker_chain_ids`` (in this order; the same for every job) and marked
        :attr:`~queuert.records.JobRecord.has_blockers` in every record read of it.

        A job is ``pending`` when every blocker chain has already completed,
        ``failed`` with a :class:`~queuert.errors.BlockerFailedError` error (naming the
        blocker) when one ended ``failed`` or ``cancelled``, and ``blocked`` otherwise.
        A blocked job becomes ``pending`` in the transaction that completes the last
        of its blocker chains (a chain completes when its last job completes without
        continuing), whichever operation ends it, and exactly once when several
        complete at the same moment in different transactions; it becomes ``failed``
        (as above, recursively for jobs blocked on its chain) in the transaction that
        fails or cancels one of them. A blocker chain that completes while this
        operation's transaction is open is seen as completed, never missed.

        With ``run_on_blocker_failure`` a blocker that ends ``failed`` or ``cancelled``
        counts as ended instead: the job becomes ``pending`` once every blocker chain
        has ended, however.

        Raises :class:`~queuert.errors.JobNotFoundError` naming the first blocker chain
        that does not exist, with nothing written. Returns the jobs as they are now.
        Adapters without the capability raise :class:`~queuert.errors.AdapterError`."""
        raise AdapterError(f"{type(self).__name__} does not support blockers")

    async def continue_blocked_job(
        self,
        *,
        tx: Tx | None,
        lease: Lease,
        next_job: NewJob,
        blocker_chain_ids: Sequence[str],
        run_on_blocker_failure: bool = False,
    ) -> JobRecord:
        """:meth:`continue_job` whose new job waits on ``blocker_chain_ids`` under the
        terms of :meth:`create_blocked_jobs`. Returns the new job as it is now."""
        raise AdapterError(f"{type(self).__name__} does not support blockers")

    async def get_blockers(self, *, tx: Tx | None, job_id: str) -> list[BlockerRecord]:
        """The chains the job waits (or waited) on, in the order they were given;
        empty for a job created without blockers or an unknown job."""
        raise AdapterError(f"{type(self).__name__} does not support blockers")

    async def list_dependent_chains(self, *, tx: Tx | None, chain_ids: Sequence[str]) -> list[str]:
        """Ids, in order, of the chains not in ``chain_ids`` holding a job created
        with one of ``chain_ids`` among its blockers."""
        raise AdapterError(f"{type(self).__name__} does not support blockers")

    # -- deduplication (capability ``deduplication``) ----------------------------

    async def create_deduplicated_jobs(
        self,
        *,
        tx: Tx | None,
        jobs: Sequence[NewJob],
        dedup: Sequence[DedupKey],
        blocker_chain_ids: Sequence[str] | None = None,
        run_on_blocker_failure: bool = False,
    ) -> list[str]:
        """Insert each of ``jobs`` (first jobs of new chains, as :meth:`create_jobs`
        does) unless a chain of the same ``chain_name`` holds its key ``dedup[i]`` in
        scope; return, per job, the id of the chain holding the key: the job's own
        chain when it was inserted, the existing chain otherwise.

        A key is held by the chain that last took it while that chain is in the
        key's scope: not ended, for ``incomplete``; started within ``window_ms``
        (or at any time without a window), for ``any``; a deleted chain holds no
        key. Two transactions taking one key at the same time, in any processes,
        start exactly one chain: the second waits for the first to end and returns
        its chain (enforced by a unique index or the store's equivalent, never by a
        read then a write). Later jobs of one call with an earlier job's key get that
        job's chain. The key is stored with the chain (``ChainRecord.dedup_key``).

        With ``blocker_chain_ids`` (adapters with the ``blockers`` capability) each job
        inserted waits on those chains under the terms of :meth:`create_blocked_jobs`;
        a job not inserted because its key is held writes no wait. The key is checked
        first; a blocker chain that does not exist raises
        :class:`~queuert.errors.JobNotFoundError` with nothing written, whether or not
        a job would be inserted.
        Adapters without the capability raise :class:`~queuert.errors.AdapterError`."""
        raise AdapterError(f"{type(self).__name__} does not support deduplication")

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

    async def complete_job_and_hand_off(
        self,
        *,
        lease: Lease,
        output: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
        lease_margin_ms: int,
    ) -> tuple[JobRecord, JobRecord | None]:
        """:meth:`complete_job` in a transaction of its own, which also hands the
        completed job's place under its queue's concurrency limit to the next job:
        the first eligible job (as :meth:`acquire_jobs` orders them) of the same
        queue or, with ``per_key``, of the same concurrency key (jobs without a key
        are one group), leased to ``lease.owner`` for ``lease_ms`` as an acquisition
        leases it. The place is handed on only when the completed job's lease was
        still valid with ``lease_margin_ms`` or more to run (checked on the store's
        clock once the job is locked), and its queue (key) had no more than
        ``concurrency_limit`` jobs running with a valid lease, the completed one
        included. So the hand-off never raises the number of running jobs, needs no
        lock against acquirers, and never fills a place that an expiring lease
        freed; a limit lowered below the number running is reached as jobs end.

        Returns the completed job's record, as :meth:`complete_job` does, and the
        job handed the place (``running``, its attempt incremented), or ``None``
        when there was none to hand it to. Raises LeaseLostError when the lease is
        gone: nothing is written. Adapters declaring ``capabilities.hand_off``
        implement it; the default raises :class:`~queuert.errors.ConfigurationError`."""
        raise ConfigurationError(
            f"{type(self).__name__} does not hand places under a limit on "
            f"(capabilities.hand_off); job {lease.job_id!r}"
        )

    # -- rate limits (capability ``rate_limits``) ---------------------------------------

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
        """Lease up to ``limit`` eligible jobs of ``queue``, as :meth:`acquire_jobs`,
        without ever starting more than ``rate`` jobs of ``queue`` (or, with
        ``per_key``, per :attr:`~queuert.records.NewJob.concurrency_key`; jobs without
        a key count as one key) within any span of ``window_ms`` by the database's
        clock: a call at ``now`` leases at most ``rate`` minus the jobs leased here
        within ``(now - window_ms, now]``. Every job leased here counts for
        ``window_ms`` from its lease, whatever happens to it. With
        ``concurrency_limit`` the acquisition also keeps within it, under the terms of
        :meth:`acquire_limited_jobs` (per key with ``per_key``).

        Jobs over the rate are skipped, not waited for: they stay ``pending`` with
        their attempt unchanged, and a later job of another key is taken in their
        place. Holds across concurrent calls from any process: two calls never
        together exceed the rate. Returns the jobs in acquisition order and, when an
        eligible job was left ``pending`` because its window's starts are used up, the
        milliseconds until the oldest start counted for it leaves the window. Adapters
        declaring ``capabilities.rate_limits`` implement it; the default raises
        :class:`~queuert.errors.ConfigurationError`."""
        raise ConfigurationError(
            f"{type(self).__name__} does not support rate limits (queue {queue!r} declares one)"
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
