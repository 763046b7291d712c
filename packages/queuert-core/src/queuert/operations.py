"""Operating chains from outside a worker: retry, cancel at any point, complete a
job from outside, purge ended chains, counts. :class:`~queuert.Queuert` exposes
these as methods; each validates its arguments before anything is written, runs
in the caller's transaction ``tx`` when one is given, and sends its
notifications after that transaction commits (inside ``app.with_notify()``) or at
once when it ran in a transaction of its own."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from queuert import validation
from queuert.control_records import QueueCount
from queuert.definitions import QueueDef
from queuert.errors import (
    ForeignQueueError,
    JobNotFoundError,
    JobStateError,
    UnknownQueueError,
    ValidationError,
)
from queuert.ids import new_id
from queuert.limit_keys import job_key
from queuert.notifications import PendingNotifications
from queuert.records import ChainRecord, JobRecord, JobStatus, NewJob

if TYPE_CHECKING:
    from queuert.client import Queuert

PURGE_BATCH_LIMIT = 10_000


def check_id(value: object, what: str = "id") -> str:
    """A job or chain id as given: a non-empty string that can be stored."""
    return validation.check_text(what, value)


def check_time(value: object, name: str) -> datetime:
    return validation.check_time(name, value)


async def retry_chain(app: Queuert[Any], chain_id: str, tx: Any) -> ChainRecord:
    check_id(chain_id, "chain_id")
    caller, tx = tx, await app._caller_tx(tx)
    chain = retryable(chain_id, await app.state.get_chain(tx=tx, chain_id=chain_id))
    job = await app.state.resume_job(tx=tx, job_id=chain.last_job_id)
    await _announce(app, caller, scheduled=[job.queue])
    return resumed(chain, job)


def retryable(chain_id: str, chain: ChainRecord | None) -> ChainRecord:
    """``chain`` (read by id ``chain_id``) when it can be retried; raises
    JobNotFoundError for a missing chain and JobStateError for one that did not fail
    and was not cancelled."""
    if chain is None:
        raise JobNotFoundError(f"no chain has id {validation.show(chain_id)}")
    if chain.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise JobStateError(
            f"chain {chain_id!r} is {chain.status.value}; only a failed or cancelled chain "
            "can be retried"
        )
    return chain


def resumed(chain: ChainRecord, job: JobRecord) -> ChainRecord:
    """The chain as resuming its last job ``job`` left it (a worker may take it at once)."""
    return dataclasses.replace(
        chain,
        status=job.status,
        output=None,
        error=job.error,
        updated_at=job.updated_at,
        completed_at=None,
    )


async def retry_job(app: Queuert[Any], job_id: str, tx: Any) -> JobRecord:
    check_id(job_id, "job_id")
    caller, tx = tx, await app._caller_tx(tx)
    job = await app.state.resume_job(tx=tx, job_id=job_id)
    await _announce(app, caller, scheduled=[job.queue])
    return job


async def cancel_chain(app: Queuert[Any], chain_id: str, tx: Any) -> ChainRecord:
    check_id(chain_id, "chain_id")
    caller, tx = tx, await app._caller_tx(tx)
    revoked = await app.state.revoke_chain(tx=tx, chain_id=chain_id)
    lost = [] if revoked.revoked_lease is None else [revoked.revoked_lease.job_id]
    app.metrics.incr("chains.cancelled")
    await _announce(app, caller, completed=[chain_id], lease_lost=lost)
    return revoked.chain


async def complete_job(
    app: Queuert[Any],
    tx: Any,
    job_id: str,
    *,
    output: object,
    has_output: bool,
    continue_with: tuple[QueueDef[Any, Any], Any] | None,
) -> JobRecord:
    check_id(job_id, "job_id")
    caller, tx = tx, await app._caller_tx(tx)
    check_settlement(has_output, continue_with)
    job = await app.state.get_job(tx=tx, job_id=job_id)
    text, next_job = settlement(app, job_id, job, output, has_output, continue_with)
    settled = await app.state.settle_job(tx=tx, job_id=job_id, output=text, next_job=next_job)
    lost = [] if settled.revoked_lease is None else [settled.revoked_lease.job_id]
    app.metrics.incr("jobs.completed_outside")
    if next_job is not None:
        await _announce(app, caller, scheduled=[next_job.queue], lease_lost=lost)
    else:
        # The jobs the completion unblocked wake their workers too.
        await _announce(
            app,
            caller,
            scheduled=settled.job.unblocked_queues,
            completed=[settled.job.chain_id],
            lease_lost=lost,
        )
    return settled.job


def check_settlement(
    has_output: bool, continue_with: tuple[QueueDef[Any, Any], Any] | None
) -> None:
    """Raise ValidationError unless exactly one of an output and a continuation is given."""
    if has_output == (continue_with is not None):
        raise ValidationError("complete_job takes exactly one of output= and continue_with=")


def settlement(
    app: Queuert[Any],
    job_id: str,
    job: JobRecord | None,
    output: object,
    has_output: bool,
    continue_with: tuple[QueueDef[Any, Any], Any] | None,
) -> tuple[str | None, NewJob | None]:
    """What completing ``job`` (read by id ``job_id``) from outside a worker writes:
    the encoded output, or the next job of ``continue_with=(queue, input)``. Raises
    JobNotFoundError for a missing job and ValidationError subclasses for a bad
    output or continuation; reads and writes nothing."""
    check_settlement(has_output, continue_with)
    if job is None:
        raise JobNotFoundError(f"no job has id {validation.show(job_id)}")
    chain = app.chains.get(job.chain_name)
    if chain is None or job.queue not in app.queues:
        raise UnknownQueueError(
            f"job {job_id!r} is of queue {job.queue!r}, which is not part of any registered chain"
        )
    if continue_with is None:
        return chain.output_codec.encode(output), None
    if not isinstance(continue_with, tuple) or len(continue_with) != 2:
        raise ValidationError(
            f"continue_with must be a (queue, input) pair, got {str(continue_with)[:80]!r}"
        )
    queue, value = continue_with
    if not isinstance(queue, QueueDef) or app.queues.get(queue.name) is not queue:
        raise UnknownQueueError(f"queue {queue!r} is not part of any registered chain")
    if queue.chain_name != chain.name:
        raise ForeignQueueError(
            f"job {job_id} of chain {chain.name!r} cannot continue with queue "
            f"{queue.name!r} of chain {queue.chain_name!r}"
        )
    next_job = NewJob(
        id=new_id(),
        chain_id=job.chain_id,
        chain_name=job.chain_name,
        queue=queue.name,
        position=job.position + 1,
        input=queue.input_codec.encode(value),
        max_attempts=queue.retry.max_attempts,
        priority=queue.priority,
        concurrency_key=job_key(queue, value),
    )
    return None, next_job


def check_statuses(statuses: Iterable[JobStatus | str] | str) -> tuple[JobStatus, ...]:
    items = [statuses] if isinstance(statuses, str) else list(statuses)
    try:
        parsed = tuple(JobStatus(s) for s in items)
    except ValueError as exc:
        raise ValidationError(f"unknown job status in {str(statuses)[:80]!r}") from exc
    if not parsed or not all(s.is_terminal for s in parsed):
        raise ValidationError(
            f"statuses must be ended statuses (completed, failed, cancelled), got {statuses!r}"
        )
    return parsed


async def purge(
    app: Queuert[Any],
    *,
    ended_before: datetime,
    statuses: Iterable[JobStatus | str] | str,
    batch_size: int,
    tx: Any,
) -> int:
    check_time(ended_before, "ended_before")
    wanted = check_statuses(statuses)
    if (
        not isinstance(batch_size, int)
        or isinstance(batch_size, bool)
        or not 1 <= batch_size <= PURGE_BATCH_LIMIT
    ):
        raise ValidationError(
            f"batch_size must be an integer within 1..{PURGE_BATCH_LIMIT}, got {batch_size!r}"
        )
    total = 0
    while True:
        # Each batch is a transaction of its own (unless the caller gave one), so no
        # lock is held for longer than one batch takes.
        deleted = await app.state.purge_chains(
            tx=tx, ended_before=ended_before, statuses=wanted, limit=batch_size
        )
        total += deleted
        if deleted < batch_size:
            break
    if total:
        app.metrics.incr("chains.purged", total)
    return total


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Jobs of one queue by status, and how long its oldest due-or-waiting pending
    job has been scheduled (seconds; ``None`` without pending jobs)."""

    queue: str
    counts: dict[str, int] = field(default_factory=dict)
    oldest_pending_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class Stats:
    """What :meth:`~queuert.Queuert.stats` returns: per queue counts, read at ``now``
    (the database clock)."""

    now: datetime
    queues: list[QueueStats] = field(default_factory=list)

    def count(self, queue: str, status: JobStatus | str) -> int:
        for item in self.queues:
            if item.queue == queue:
                return item.counts.get(JobStatus(status).value, 0)
        return 0


async def stats(app: Queuert[Any], tx: Any) -> Stats:
    read = await app.state.count_jobs(tx=tx)
    by_queue: dict[str, list[QueueCount]] = {}
    for count in read.counts:
        by_queue.setdefault(count.queue, []).append(count)
    queues = []
    for name in sorted(by_queue):
        counts = {c.status.value: c.count for c in by_queue[name]}
        oldest = [c.oldest_scheduled_at for c in by_queue[name] if c.oldest_scheduled_at]
        age = max(0.0, (read.now - min(oldest)).total_seconds()) if oldest else None
        queues.append(QueueStats(queue=name, counts=counts, oldest_pending_age_s=age))
    return Stats(now=read.now, queues=queues)


async def _announce(
    app: Queuert[Any],
    caller: Any,
    *,
    scheduled: Iterable[str] = (),
    completed: Iterable[str] = (),
    lease_lost: Iterable[str] = (),
) -> None:
    batch = PendingNotifications()
    for queue in scheduled:
        batch.scheduled[queue] += 1
    batch.completed_chains.extend(completed)
    batch.lease_lost.extend(lease_lost)
    # After the caller's commit: an SQLAlchemy session sends it from its after-commit
    # event; otherwise as publish() does (collected by with_notify when open).
    await app._publish_after(caller, batch)
