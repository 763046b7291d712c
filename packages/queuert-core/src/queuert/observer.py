"""Hooks through which instrumentation (such as :mod:`queuert.otel`) follows what an
application and its workers do, without core knowing about any telemetry library.

An :class:`Observer` is installed with :meth:`queuert.Queuert.observe`. Core calls it
from one place for the ports (:mod:`queuert.instrumented`) and from the worker around
each attempt. Every hook runs on the event loop and must neither block nor raise.
The base class does nothing, so an observer overrides only what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from queuert.records import ChainRecord, JobError, JobRecord, Lease, NewJob

if TYPE_CHECKING:
    from queuert.context import JobContext

Phase = Literal["claim", "finalize"]
"""The transactional phases of an attempt."""

Outcome = Literal["completed", "continued", "retried", "failed", "rescheduled", "released"]
"""How an attempt ended, as written by its worker:

- ``completed``: the job ended its chain with an output;
- ``continued``: the job continued its chain with a next job;
- ``retried``: the attempt failed and the job was rescheduled for another one;
- ``failed``: the attempt failed and the job (and its chain) failed for good;
- ``rescheduled``: the handler put the job back without counting the attempt;
- ``released``: the worker stopped and gave the job back.
"""


class Observer:
    """No-op hooks; subclasses override what they observe.

    ``lease`` arguments identify an attempt (job id, worker, attempt number).
    Hooks named after a write are called once the write returned; a write in a
    caller's transaction may still roll back, a write in the worker's own
    transaction (``tx=None``) has committed.
    """

    @contextmanager
    def creating(self, jobs: Sequence[NewJob], *, by: Lease | None) -> Iterator[Sequence[NewJob]]:
        """Around writing new jobs: chain starts, blocked and deduplicated ones
        included, and continuations written outside any attempt (``complete_job``)
        when ``by`` is ``None``; otherwise the continuation written by the attempt
        ``by``. Yields the jobs to write, which may carry a ``trace_context``; leaving
        the block without an exception means they were written, except those
        :meth:`deduplicated` named inside the block."""
        yield jobs

    def deduplicated(self, jobs: Sequence[NewJob]) -> None:
        """Called inside a :meth:`creating` block, before it exits: these of its jobs
        (as the block yielded them) were not written, because a chain held their
        deduplication key; the start returned that chain instead."""

    @contextmanager
    def attempt(self, ctx: JobContext[Any, Any]) -> Iterator[None]:
        """Around a worker's whole run of one attempt (``ctx.record``), in the task
        that runs it. On exit ``ctx.lease_lost`` tells whether the lease was lost."""
        yield

    @contextmanager
    def phase(self, lease: Lease, name: Phase) -> Iterator[None]:
        """Around the transaction of a ``claim`` or a ``finalize``; leaving it without
        an exception means it committed."""
        yield

    def ended(
        self,
        lease: Lease,
        outcome: Outcome,
        *,
        error: JobError | None = None,
        delay_ms: int | None = None,
    ) -> None:
        """The attempt ``lease`` wrote its end (inside the finalize transaction for
        ``completed`` and ``continued``: it counts once :meth:`phase` exits cleanly).
        ``error`` is the recorded error, ``delay_ms`` the delay of a job put back
        to ``pending`` (``None`` when it was put back to a given time)."""

    def lease_renewed(self, lease: Lease, until: datetime) -> None:
        """The attempt's lease was extended to ``until``."""

    def lease_lost(self, lease: Lease) -> None:
        """A lease-guarded operation of the attempt found its lease gone."""

    def leases_expired(self, records: Sequence[JobRecord]) -> None:
        """The reaper took these jobs back (now ``pending``, or ``failed`` when out
        of attempts)."""

    def chain_cancelled(self, record: ChainRecord) -> None:
        """A chain was cancelled."""

    def chain_completed(self, record: JobRecord) -> None:
        """A chain was completed from outside any attempt (``complete_job`` with an
        output): ``record`` is its last job, now ``completed``. A completion written
        by a worker is told through :meth:`ended` instead."""
