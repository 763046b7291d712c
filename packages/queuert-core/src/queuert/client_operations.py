"""The application's operations on chains and jobs (cancel, retry, complete,
delete, purge) and its views of the system (workers, stats, explain), whose work
:mod:`queuert.operations` does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, cast

from queuert import operations
from queuert.control_records import WorkerRecord
from queuert.definitions import QueueDef
from queuert.errors import ChainHasDependentsError
from queuert.ports.state import StateAdapter, Tx
from queuert.records import ChainRecord, JobRecord, JobStatus
from queuert.validation import check_ids

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

    from queuert.client import Queuert
    from queuert.explain import Explanation

_NO_OUTPUT: Any = object()


class ClientOperations(Generic[Tx]):
    """The operating methods of :class:`~queuert.client.Queuert`."""

    if TYPE_CHECKING:
        state: StateAdapter[Tx]

        async def _caller_tx(self, tx: object) -> Tx | None: ...

    async def cancel_chain(
        self, chain_id: str, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> ChainRecord:
        """Cancel a chain at any point: its current job becomes ``cancelled``. When a
        worker is running it, its lease is revoked in the same transaction, the
        worker is told through the lease-lost signal after commit (and finds out at
        its next heartbeat or finalize at the latest), its handler is cancelled and
        its finalize commits nothing. Raises :class:`~queuert.errors.JobNotFoundError`
        for an unknown id and :class:`~queuert.errors.ChainEndedError` for a chain
        that already ended."""
        return await operations.cancel_chain(_app(self), chain_id, tx)

    async def delete_chains(
        self,
        chain_ids: Sequence[str],
        *,
        cascade: bool = False,
        tx: Tx | AsyncSession | AsyncConnection | None = None,
    ) -> int:
        """Delete chains with all their jobs; returns how many existed.

        A chain that jobs of other chains wait (or waited) on as a blocker is not
        deleted: :class:`~queuert.errors.ChainHasDependentsError` is raised, with
        nothing deleted, unless ``cascade`` is true, which deletes those chains too
        (and the chains depending on them, in turn); they count in the result."""
        ids = check_ids("chain_ids", chain_ids)
        state_tx = await self._caller_tx(tx)
        if not self.state.capabilities.blockers:
            return await self.state.delete_chains(tx=state_tx, chain_ids=ids)
        if state_tx is None:
            async with self.state.transaction() as own:
                return await self._delete_with_dependents(own, ids, cascade)
        return await self._delete_with_dependents(state_tx, ids, cascade)

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

    async def retry_chain(
        self, chain_id: str, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> ChainRecord:
        """Resume a ``failed`` or ``cancelled`` chain at the job it ended on (not from
        its first step), with a fresh attempt budget; its last error stays readable
        until the next attempt ends. Raises :class:`~queuert.errors.JobNotFoundError`
        for an unknown id and :class:`~queuert.errors.JobStateError` for a chain that
        is running, waiting or completed."""
        return await operations.retry_chain(_app(self), chain_id, tx)

    async def retry_job(
        self, job_id: str, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> JobRecord:
        """Resume a ``failed`` or ``cancelled`` job that ended its chain, as
        :meth:`retry_chain` does. Raises JobNotFoundError or JobStateError."""
        return await operations.retry_job(_app(self), job_id, tx)

    async def complete_job(
        self,
        tx: Tx | AsyncSession | AsyncConnection | None,
        job_id: str,
        *,
        output: Any = _NO_OUTPUT,
        continue_with: tuple[QueueDef[Any, Any], Any] | None = None,
    ) -> JobRecord:
        """End a job that has not ended from application code, in the caller's
        transaction ``tx``: with ``output`` (of the chain's output type) it completes
        the chain, with ``continue_with=(queue, input)`` it continues it. Meant for
        jobs of ``external`` queues (webhooks, approvals); it also works on a pending
        job of any queue and on a running one (whose worker's lease is revoked as
        for :meth:`cancel_chain`). Exactly once: a second completion raises
        :class:`~queuert.errors.ChainEndedError`. Raises JobNotFoundError for an
        unknown id and ValidationError subclasses for a bad output or continuation,
        before anything is written. Returns the job as it is now."""
        return await operations.complete_job(
            _app(self),
            tx,
            job_id,
            output=None if output is _NO_OUTPUT else output,
            has_output=output is not _NO_OUTPUT,
            continue_with=continue_with,
        )

    async def purge(
        self,
        *,
        ended_before: datetime,
        statuses: Iterable[JobStatus | str] | str = ("completed",),
        batch_size: int = 1000,
        tx: Tx | AsyncSession | AsyncConnection | None = None,
    ) -> int:
        """Delete chains that ended (with one of ``statuses``) before
        ``ended_before``, with all their jobs, ``batch_size`` chains per transaction
        so that no lock is held long; returns how many were deleted."""
        return await operations.purge(
            _app(self),
            ended_before=ended_before,
            statuses=statuses,
            batch_size=batch_size,
            tx=await self._caller_tx(tx),
        )

    async def list_workers(
        self, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> list[WorkerRecord]:
        """The workers that recorded themselves recently (id, host, pid, queues,
        concurrency, started, last seen); stopped workers remove their record and
        records of workers not seen for a while are dropped."""
        return await self.state.list_workers(tx=await self._caller_tx(tx))

    async def stats(
        self, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> operations.Stats:
        """Job counts by queue and status, and the age of each queue's oldest pending
        job."""
        return await operations.stats(_app(self), await self._caller_tx(tx))

    async def explain(
        self, job_or_chain_id: str, *, tx: Tx | AsyncSession | AsyncConnection | None = None
    ) -> Explanation:
        """Why the job (or the chain's current job) is not running, or how it ended:
        scheduled for later, waiting behind N jobs, no worker serving its queue,
        leased by a worker (and whether that lease expired), external, failed with
        its error, cancelled, completed. Raises JobNotFoundError for an unknown id."""
        from queuert.explain import explain

        return await explain(_app(self), job_or_chain_id, await self._caller_tx(tx))


def _app(methods: ClientOperations[Tx]) -> Queuert[Tx]:
    """The application these methods run on: only :class:`~queuert.client.Queuert`
    mixes them in, and :mod:`queuert.operations` takes the application."""
    return cast("Queuert[Tx]", methods)
