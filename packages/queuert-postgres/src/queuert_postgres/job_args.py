"""The parameters of the statements that write jobs, taken from queuert's records."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queuert.records import Lease, NewJob


def new_job_args(job: NewJob) -> tuple[Any, ...]:
    return (
        job.id,
        job.chain_id,
        job.chain_name,
        job.queue,
        job.position,
        job.input,
        job.max_attempts,
        job.priority,
        job.scheduled_at,
        job.delay_ms,
        job.trace_context,
    )


def shared_fields(job: NewJob) -> tuple[Any, ...]:
    """What the jobs of one ``enqueue_job_chains`` call share, in the order of the
    scalar parameters of ``Statements.create_chain_starts``."""
    return (
        job.chain_name,
        job.queue,
        job.max_attempts,
        job.priority,
        job.scheduled_at,
        job.delay_ms,
    )


def alike_chain_starts(jobs: Sequence[NewJob]) -> bool:
    """Whether ``jobs`` are all first jobs of their chains and differ only in id and
    input (as the jobs of one ``enqueue_job_chains`` call do) and carry no trace context."""
    shared = shared_fields(jobs[0])
    return all(
        j.position == 0
        and j.chain_id == j.id
        and j.trace_context is None
        and shared_fields(j) == shared
        for j in jobs
    )


def continue_args(lease: Lease, job: NewJob) -> tuple[Any, ...]:
    return (lease.job_id, lease.owner, lease.attempt, *new_job_args(job))
