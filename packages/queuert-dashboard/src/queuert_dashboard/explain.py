"""Why a job is where it is, in a sentence, from its record alone."""

from __future__ import annotations

from datetime import datetime

from queuert import JobRecord, JobStatus


def explain(job: JobRecord, now: datetime) -> str:
    """A sentence telling why ``job`` is not running, or what it is doing, at
    ``now`` (an aware datetime)."""
    status = job.status
    if status is JobStatus.PENDING:
        if job.scheduled_at > now:
            return f"Waiting until {job.scheduled_at.isoformat()} (scheduled; not eligible yet)."
        retry = " for a retry" if job.attempt else ""
        return (
            f"Eligible since {job.scheduled_at.isoformat()}{retry}: waiting for a worker "
            f"that handles the queue {job.queue!r}."
        )
    if status is JobStatus.RUNNING:
        until = job.leased_until.isoformat() if job.leased_until else "an unknown time"
        return (
            f"Running attempt {job.attempt} of {job.max_attempts} on worker {job.leased_by}, "
            f"leased until {until}."
        )
    if status is JobStatus.BLOCKED:
        return "Blocked: waiting for the chains it depends on to complete."
    if status is JobStatus.FAILED:
        error = f": {job.error.type}: {job.error.message}" if job.error else ""
        return f"Failed for good after attempt {job.attempt} of {job.max_attempts}{error}."
    if status is JobStatus.CANCELLED:
        return "Cancelled."
    if job.continued:
        return f"Completed by continuing its chain with job {job.next_job_id}."
    return "Completed: its output is the chain's output."
