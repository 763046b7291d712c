"""Blockers of the in-memory state adapter: which jobs wait on which chains, and
the unblocking (or failing) of those jobs when a chain ends.

Every change goes through the transaction's undo log, so a rollback restores
the waits as exactly as it restores the jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from queuert.blockers import blocker_error, initial_wait
from queuert.errors import JobNotFoundError
from queuert.records import BlockerRecord, JobStatus

if TYPE_CHECKING:
    from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction, _Row

K = TypeVar("K")
V = TypeVar("V")


def _assign(tx: MemoryTransaction, mapping: dict[K, V], key: K, value: V) -> None:
    """``mapping[key] = value``, undone when ``tx`` (or its savepoint) rolls back."""
    missing = key not in mapping
    old = mapping.get(key)

    def undo() -> None:
        if missing:
            mapping.pop(key, None)
        else:
            mapping[key] = old  # type: ignore[assignment]

    tx.on_rollback(undo)
    mapping[key] = value


class MemoryBlockers:
    """The waits of one in-memory store."""

    def __init__(self) -> None:
        self.of: dict[str, tuple[str, ...]] = {}
        """Blocker chain ids of each job created with blockers, in the order given."""
        self.dependents: dict[str, tuple[str, ...]] = {}
        """Ids of the jobs created with each chain among their blockers."""
        self.left: dict[str, int] = {}
        """How many distinct blocker chains of each blocked job have not completed."""
        self.runs: dict[str, bool] = {}
        """Jobs that run once their blockers ended, however (``on_blocker_failure="run"``)."""
        self.unblocked: dict[str, None] = {}
        """Queues of the jobs the last write made pending (see :meth:`take_unblocked`)."""

    def check(self, store: MemoryStateAdapter, chain_ids: Sequence[str]) -> None:
        """Raise JobNotFoundError naming the first chain of ``chain_ids`` that does not
        exist."""
        for chain_id in chain_ids:
            if chain_id not in store._chains:
                raise JobNotFoundError(f"blocker chain {chain_id!r} does not exist")

    def attach(
        self,
        store: MemoryStateAdapter,
        tx: MemoryTransaction,
        rows: Sequence[_Row],
        chain_ids: Sequence[str],
        now: datetime,
        run_on_failure: bool = False,
    ) -> None:
        """Make the just-inserted ``rows`` wait on ``chain_ids`` (checked to exist)."""
        statuses = {c: store._chains[c].last().status for c in dict.fromkeys(chain_ids)}
        status, left, error = initial_wait(statuses, chain_ids, run_on_failure)
        distinct = list(statuses)
        for row in rows:
            # A row inserted by this transaction: a rollback removes it whole.
            row.has_blockers = True
            row.cached = None
            _assign(tx, self.of, row.id, tuple(chain_ids))
            if run_on_failure:
                _assign(tx, self.runs, row.id, True)
            for chain_id in distinct:
                waiting = self.dependents.get(chain_id, ())
                _assign(tx, self.dependents, chain_id, (*waiting, row.id))
            if status is JobStatus.FAILED:
                store._finish(tx, row, JobStatus.FAILED, now)
                row.error = error
            elif status is JobStatus.BLOCKED:
                store._touch(tx, row)
                row.status = JobStatus.BLOCKED
                _assign(tx, self.left, row.id, left)

    def chain_ended(
        self, store: MemoryStateAdapter, tx: MemoryTransaction, row: _Row, now: datetime
    ) -> None:
        """``row``, the last job of its chain, just ended the chain: unblock the jobs
        waiting on it when it completed (those it was the last blocker of), fail
        them when it failed or was cancelled."""
        for job_id in self.dependents.get(row.chain_id, ()):
            dependent = store._jobs.get(job_id)
            if dependent is None or dependent.status is not JobStatus.BLOCKED:
                continue
            if row.status is JobStatus.COMPLETED or self.runs.get(dependent.id, False):
                self.unblock_one(store, tx, dependent, now)
            else:
                store._finish(tx, dependent, JobStatus.FAILED, now)
                dependent.error = blocker_error(row.chain_id, row.status.value)

    def unblock_one(
        self, store: MemoryStateAdapter, tx: MemoryTransaction, dependent: _Row, now: datetime
    ) -> None:
        """One of ``dependent``'s blocker chains completed."""
        left = self.left.get(dependent.id, 1) - 1
        _assign(tx, self.left, dependent.id, left)
        if left <= 0:
            store._touch(tx, dependent)
            dependent.status = JobStatus.PENDING
            dependent.updated_at = now
            store._index(dependent)
            self.unblocked[dependent.queue] = None

    def take_unblocked(self) -> tuple[str, ...]:
        """The queues of the jobs made pending since the last call, and forget them
        (writes run one at a time: called before and after a write, they are the
        write's)."""
        queues = tuple(self.unblocked)
        self.unblocked.clear()
        return queues

    def records(self, store: MemoryStateAdapter, job_id: str) -> list[BlockerRecord]:
        records = []
        for chain_id in self.of.get(job_id, ()):
            chain = store._chains.get(chain_id)
            if chain is None:
                continue
            last = chain.last()
            records.append(
                BlockerRecord(chain_id, chain.first().chain_name, last.status, last.output)
            )
        return records

    def dependent_chains(self, store: MemoryStateAdapter, chain_ids: Sequence[str]) -> list[str]:
        asked = set(chain_ids)
        found = set()
        for chain_id in asked:
            for job_id in self.dependents.get(chain_id, ()):
                row = store._jobs.get(job_id)
                if row is not None and row.chain_id not in asked:
                    found.add(row.chain_id)
        return sorted(found)
