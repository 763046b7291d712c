"""Records of the port operations that control and observe chains from outside a
worker: cancelling a running chain, completing a job from outside, worker
records, counts and a job's place in its queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from queuert.records import ChainRecord, JobRecord, JobStatus, Lease


@dataclass(frozen=True, slots=True)
class RevokedChain:
    """What :meth:`~queuert.ports.state.StateAdapter.revoke_chain` did: the chain as it
    is now (``cancelled``), and the lease it took from the worker running its last
    job, if one was."""

    chain: ChainRecord
    revoked_lease: Lease | None = None


@dataclass(frozen=True, slots=True)
class SettledJob:
    """What :meth:`~queuert.ports.state.StateAdapter.settle_job` did: the job as it is
    now (``completed``), the next job when it continued its chain, and the lease
    it took from a worker that was running the job, if one was."""

    job: JobRecord
    next_job: JobRecord | None = None
    revoked_lease: Lease | None = None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker as it records itself: its id, where it runs, what it serves."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    purges: bool = False
    """Whether the worker purges ended chains (its ``retention`` is set)."""


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    """A recorded worker: :class:`WorkerInfo` plus when it first and last recorded
    itself (by the database clock)."""

    id: str
    host: str
    pid: int
    queues: tuple[str, ...]
    concurrency: int
    started_at: datetime
    last_seen_at: datetime
    purges: bool = False


@dataclass(frozen=True, slots=True)
class QueueCount:
    """How many jobs of ``queue`` have ``status``; for ``pending`` jobs also the
    earliest ``scheduled_at`` among them."""

    queue: str
    status: JobStatus
    count: int
    oldest_scheduled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """Counts by queue and status, read at ``now`` (the database clock)."""

    now: datetime
    counts: list[QueueCount] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class QueuePosition:
    """A job read together with the database's clock and, for a ``pending`` job, how
    many ``pending`` jobs of its queue that are due are taken before it."""

    job: JobRecord
    now: datetime
    ahead: int = 0
