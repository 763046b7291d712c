"""Plain records exchanged between core and the ports.

Inputs and outputs cross the ports as JSON text (``str``): core encodes and
validates them once, adapters store and return the text unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class JobStatus(StrEnum):
    """Where a job is in its life cycle (DESIGN section 3)."""

    BLOCKED = "blocked"
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


@dataclass(frozen=True, slots=True)
class JobError:
    """The error recorded for a job's last failed attempt."""

    type: str
    message: str
    traceback: str | None = None

    def to_json(self) -> str:
        return json.dumps({"type": self.type, "message": self.message, "traceback": self.traceback})

    @classmethod
    def from_json(cls, text: str | None) -> JobError | None:
        if text is None:
            return None
        data = json.loads(text)
        return cls(type=data["type"], message=data["message"], traceback=data.get("traceback"))


LEASE_EXPIRED_ERROR = JobError(type="LeaseExpired", message="lease expired")
"""The error a state adapter records on a job whose lease it reaped."""


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job to create. ``scheduled_at`` wins over ``delay_ms``; both absent means now
    (by the database clock)."""

    id: str
    chain_id: str
    chain_name: str
    queue: str
    position: int
    input: str
    max_attempts: int
    priority: int = 0
    scheduled_at: datetime | None = None
    delay_ms: int = 0
    trace_context: str | None = None
    """Telemetry context carried from the code that created the job (JSON text,
    stored unchanged; see :mod:`queuert.otel`)."""
    concurrency_key: str | None = None
    """The key a per-key concurrency limit of ``queue`` counts the job under."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Proof of ownership of a running job: the lease owner and the attempt it took.

    Every lease-guarded operation succeeds only while the job is ``running``
    with this owner and this attempt number.
    """

    job_id: str
    owner: str
    attempt: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    """One job as stored. ``next_job_id`` is set when the job continued its chain;
    a job that ended its chain has ``output`` instead."""

    id: str
    chain_id: str
    chain_name: str
    queue: str
    position: int
    status: JobStatus
    input: str
    attempt: int
    max_attempts: int
    priority: int
    scheduled_at: datetime
    created_at: datetime
    updated_at: datetime
    leased_by: str | None = None
    leased_until: datetime | None = None
    output: str | None = None
    error: JobError | None = None
    next_job_id: str | None = None
    completed_at: datetime | None = None
    trace_context: str | None = None
    has_blockers: bool = False
    """True for a job created with blockers (it waits, or waited, on other chains):
    the worker reads them into its handler's ``job.blockers``."""
    unblocked_queues: tuple[str, ...] = ()
    """Set only on the record a completion that ended the job's chain returns: the
    queues of the jobs waiting on this chain that the completion made ``pending``
    (it may also name a queue whose job still waits on other chains), whose idle
    workers core wakes once the completion commits. Never stored; empty on every
    other record."""

    @property
    def continued(self) -> bool:
        """True when the job completed by continuing its chain with another job."""
        return self.next_job_id is not None

    @property
    def lease(self) -> Lease:
        """The lease this record proves, for a job that is ``running``."""
        if self.leased_by is None:
            raise ValueError(f"job {self.id!r} is not leased")
        return Lease(job_id=self.id, owner=self.leased_by, attempt=self.attempt)

    def input_value(self) -> Any:
        """The input decoded from JSON into plain Python values."""
        return json.loads(self.input)

    def output_value(self) -> Any:
        """The output decoded from JSON into plain Python values (``None`` if absent)."""
        return None if self.output is None else json.loads(self.output)


@dataclass(frozen=True, slots=True)
class ChainRecord:
    """A chain: its id is its first job's id; its status and output are those of
    its current last job."""

    id: str
    chain_name: str
    status: JobStatus
    input: str
    output: str | None
    error: JobError | None
    last_job_id: str
    last_queue: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    dedup_key: str | None = None
    """The deduplication key the chain was started with, if any."""

    def input_value(self) -> Any:
        return json.loads(self.input)

    def output_value(self) -> Any:
        return None if self.output is None else json.loads(self.output)


@dataclass(frozen=True, slots=True)
class JobFilter:
    """Filters for listing jobs; ``None`` means any. ``created_after`` and
    ``created_before`` bound ``created_at`` (exclusive). ``newest_first`` lists in
    descending id order: the page after cursor ``after`` then holds smaller ids."""

    statuses: tuple[JobStatus, ...] | None = None
    chain_id: str | None = None
    queues: tuple[str, ...] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    newest_first: bool = False


@dataclass(frozen=True, slots=True)
class ChainFilter:
    """Filters for listing chains; ``None`` means any. The time bounds and
    ``newest_first`` work as in :class:`JobFilter`, on the chain's ``created_at``
    (its first job's)."""

    statuses: tuple[JobStatus, ...] | None = None
    chain_names: tuple[str, ...] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    newest_first: bool = False
    dedup_key: str | None = None
    queues: tuple[str, ...] | None = None
    """The queues of the chains' current (last) jobs."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a keyset-paginated listing, in ascending id order.

    ``next_cursor`` is passed back as ``after`` to read the next page; it is
    ``None`` on the last page.
    """

    items: list[T] = field(default_factory=list)
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class BlockerRecord:
    """One chain a job waits on, as it is now: the status of the chain's last job
    and, once the chain completed, its output (JSON text)."""

    chain_id: str
    chain_name: str
    status: JobStatus
    output: str | None


class DedupScope(StrEnum):
    """Which existing chain with the same key stops a new one from starting."""

    INCOMPLETE = "incomplete"
    """A chain that has not ended (``completed``, ``failed`` or ``cancelled``)."""
    ANY = "any"
    """Any chain, ended or not (within the window, when one is given)."""


@dataclass(frozen=True, slots=True)
class DedupKey:
    """The deduplication of one chain start: ``key`` (scoped by chain name), which
    chains it matches (``scope``) and, for ``any``, how recent a chain must be
    (``window_ms`` since its start; ``None``: however old)."""

    key: str
    scope: DedupScope = DedupScope.INCOMPLETE
    window_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ScheduleSlot:
    """A slot of a schedule whose chain was started: the schedule's name, the slot's
    time and the chain started for it."""

    schedule: str
    slot_time: datetime
    chain_id: str
