"""The in-memory adapter's statements for control from outside a worker (revoke,
resume, settle, purge), worker records, counts and listings in either order.

Each function runs inside a :class:`~queuert.adapters.memory_state.MemoryTransaction`
the adapter holds (see ``MemoryStateAdapter._run``); writes go through the
adapter's undo log so that a rollback restores them.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from queuert.adapter_support import keyset_page
from queuert.adapters.memory_rows import _chain_record, _Row
from queuert.adapters.memory_store import _DELETED
from queuert.control_records import (
    QueueCount,
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.errors import AdapterError, ChainEndedError, JobNotFoundError, JobStateError
from queuert.records import (
    ChainFilter,
    ChainRecord,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
)

if TYPE_CHECKING:
    from queuert.adapters.memory_state import MemoryStateAdapter
    from queuert.adapters.memory_store import MemoryStore, MemoryTransaction

_OPEN = (JobStatus.PENDING, JobStatus.BLOCKED, JobStatus.RUNNING)


def _lease_of(row: _Row) -> Lease | None:
    if row.status is JobStatus.RUNNING and row.leased_by is not None:
        return Lease(job_id=row.id, owner=row.leased_by, attempt=row.attempt)
    return None


def revoke_chain(adapter: MemoryStateAdapter, tx: MemoryTransaction, chain_id: str) -> RevokedChain:
    chain = adapter._chains.get(chain_id)
    if chain is None:
        raise JobNotFoundError(f"no chain has id {chain_id!r}")
    last = chain.last()
    if last.status not in _OPEN:
        raise ChainEndedError(f"chain {chain_id!r} already ended {last.status.value}")
    lease = _lease_of(last)
    adapter._finish(tx, last, JobStatus.CANCELLED, adapter.now())
    return RevokedChain(chain=_chain_record(chain_id, chain), revoked_lease=lease)


def resume_job(adapter: MemoryStateAdapter, tx: MemoryTransaction, job_id: str) -> JobRecord:
    row = adapter._jobs.get(job_id)
    if row is None:
        raise JobNotFoundError(f"no job has id {job_id!r}")
    if row.status not in (JobStatus.FAILED, JobStatus.CANCELLED) or row.next_job_id is not None:
        raise JobStateError(
            f"job {job_id!r} is {row.status.value}; only a failed or cancelled job that ended "
            "its chain can be retried"
        )
    now = adapter.now()
    adapter._touch(tx, row)
    row.status = JobStatus.PENDING
    row.attempt = 0
    row.scheduled_at = now
    row.completed_at = None
    row.updated_at = now
    adapter._index(row)
    return row.record()


def settle_job(
    adapter: MemoryStateAdapter,
    tx: MemoryTransaction,
    job_id: str,
    output: str | None,
    next_job: NewJob | None,
) -> SettledJob:
    row = adapter._jobs.get(job_id)
    if row is None:
        raise JobNotFoundError(f"no job has id {job_id!r}")
    if row.status not in _OPEN:
        raise ChainEndedError(f"job {job_id!r} already ended {row.status.value}")
    if (output is None) == (next_job is None):
        raise AdapterError("settle_job takes exactly one of output and next_job")
    lease = _lease_of(row)
    now = adapter.now()
    created: JobRecord | None = None
    if next_job is not None:
        new = _Row(
            next_job, adapter._scheduled_at(now, next_job.scheduled_at, next_job.delay_ms), now
        )
        adapter._insert(tx, new)
        created = new.record()
    adapter._blockers.take_unblocked()  # what earlier writes unblocked is not this one's
    # A job that continues its chain does not end it: its chain's dependents wait on.
    adapter._finish(tx, row, JobStatus.COMPLETED, now, continued=next_job is not None)
    if next_job is not None:
        row.next_job_id = next_job.id
    else:
        row.output = output
    record = row.record()
    unblocked = adapter._blockers.take_unblocked()
    if unblocked:
        record = dataclasses.replace(record, unblocked_queues=unblocked)
    return SettledJob(job=record, next_job=created, revoked_lease=lease)


def purge_chains(
    adapter: MemoryStateAdapter,
    tx: MemoryTransaction,
    ended_before: datetime,
    statuses: Sequence[JobStatus],
    limit: int,
) -> int:
    wanted = frozenset(s for s in statuses if s.is_terminal)
    doomed: list[str] = []
    for chain_id in adapter._chain_ids:
        if len(doomed) >= limit:
            break
        last = adapter._chains[chain_id].last()
        if (
            last.status in wanted
            and last.completed_at is not None
            and last.completed_at < ended_before
        ):
            doomed.append(chain_id)
    for chain_id in doomed:
        for row in list(adapter._chains[chain_id].rows.values()):
            adapter._unlink(row)
            tx._undo.append((_DELETED, row, None))
    return len(doomed)


def _workers(adapter: MemoryStateAdapter) -> dict[str, WorkerRecord]:
    return adapter._workers


def record_worker(
    adapter: MemoryStateAdapter, tx: MemoryTransaction, worker: WorkerInfo, forget_ms: int
) -> None:
    workers = _workers(adapter)
    before = dict(workers)
    now = adapter.now()
    known = workers.get(worker.id)
    workers[worker.id] = WorkerRecord(
        id=worker.id,
        host=worker.host,
        pid=worker.pid,
        queues=tuple(worker.queues),
        concurrency=worker.concurrency,
        started_at=known.started_at if known is not None else now,
        last_seen_at=now,
        purges=worker.purges,
    )
    cutoff = now - timedelta(milliseconds=forget_ms)
    for worker_id, record in list(workers.items()):
        if record.last_seen_at < cutoff:
            del workers[worker_id]
    tx.on_rollback(lambda: _restore(workers, before))


def remove_worker(adapter: MemoryStateAdapter, tx: MemoryTransaction, worker_id: str) -> None:
    workers = _workers(adapter)
    before = dict(workers)
    workers.pop(worker_id, None)
    tx.on_rollback(lambda: _restore(workers, before))


def _restore(workers: dict[str, WorkerRecord], before: dict[str, WorkerRecord]) -> None:
    workers.clear()
    workers.update(before)


def list_workers(adapter: MemoryStateAdapter, tx: MemoryTransaction) -> list[WorkerRecord]:
    workers = _workers(adapter)
    return [workers[key] for key in sorted(workers)]


def count_jobs(adapter: MemoryStateAdapter, tx: MemoryTransaction) -> QueueCounts:
    counts: dict[tuple[str, JobStatus], int] = {}
    oldest: dict[str, datetime] = {}
    for row in adapter._jobs.values():
        key = (row.queue, row.status)
        counts[key] = counts.get(key, 0) + 1
        if row.status is JobStatus.PENDING:
            earliest = oldest.get(row.queue)
            if earliest is None or row.scheduled_at < earliest:
                oldest[row.queue] = row.scheduled_at
    items = [
        QueueCount(
            queue=queue,
            status=status,
            count=n,
            oldest_scheduled_at=oldest.get(queue) if status is JobStatus.PENDING else None,
        )
        for (queue, status), n in sorted(counts.items())
    ]
    return QueueCounts(now=adapter.now(), counts=items)


def queue_position(
    adapter: MemoryStateAdapter, tx: MemoryTransaction, job_id: str
) -> QueuePosition | None:
    row = adapter._jobs.get(job_id)
    if row is None:
        return None
    now = adapter.now()
    ahead = 0
    if row.status is JobStatus.PENDING:
        key = (row.scheduled_at, -row.priority, row.id)
        for other in adapter._jobs.values():
            if (
                other.status is JobStatus.PENDING
                and other.queue == row.queue
                and other.scheduled_at <= now
                and (other.scheduled_at, -other.priority, other.id) < key
            ):
                ahead += 1
    return QueuePosition(job=row.record(), now=now, ahead=ahead)


def _ordered(keys: list[str], after: str | None, newest_first: bool) -> Iterator[str]:
    if not newest_first:
        start = 0 if after is None else bisect_right(keys, after)
        for index in range(start, len(keys)):
            yield keys[index]
        return
    stop = len(keys) if after is None else bisect_left(keys, after)
    for index in range(stop - 1, -1, -1):
        yield keys[index]


def _in_window(created_at: datetime, after: datetime | None, before: datetime | None) -> bool:
    return (after is None or created_at > after) and (before is None or created_at < before)


def list_jobs(
    adapter: MemoryStore, filter: JobFilter, after: str | None, limit: int
) -> Page[JobRecord]:
    if filter.chain_id is not None:
        chain = adapter._chains.get(filter.chain_id)
        keys = sorted(row.id for row in chain.rows.values()) if chain else []
    else:
        keys = adapter._job_ids
    items: list[JobRecord] = []
    if limit > 0:
        for job_id in _ordered(keys, after, filter.newest_first):
            row = adapter._jobs[job_id]
            if filter.statuses is not None and row.status not in filter.statuses:
                continue
            if filter.queues is not None and row.queue not in filter.queues:
                continue
            if not _in_window(row.created_at, filter.created_after, filter.created_before):
                continue
            items.append(row.record())
            if len(items) == limit:
                break
    return keyset_page(items, limit)


def list_chains(
    adapter: MemoryStore, filter: ChainFilter, after: str | None, limit: int
) -> Page[ChainRecord]:
    items: list[ChainRecord] = []
    if limit > 0:
        for chain_id in _ordered(adapter._chain_ids, after, filter.newest_first):
            chain = adapter._chains[chain_id]
            first = chain.first()
            if filter.chain_names is not None and first.chain_name not in filter.chain_names:
                continue
            if filter.statuses is not None and chain.last().status not in filter.statuses:
                continue
            if filter.queues is not None and chain.last().queue not in filter.queues:
                continue
            if not _in_window(first.created_at, filter.created_after, filter.created_before):
                continue
            key = adapter._dedup.keys.get(chain_id)
            if filter.dedup_key is not None and key != filter.dedup_key:
                continue
            items.append(_chain_record(chain_id, chain, key))
            if len(items) == limit:
                break
    return keyset_page(items, limit)
