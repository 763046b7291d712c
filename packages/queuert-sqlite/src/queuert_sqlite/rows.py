"""Conversion between stored rows and queuert records."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from queuert.adapter_support import job_record
from queuert.records import ChainRecord, JobError, JobRecord, JobStatus, NewJob
from queuert_sqlite.clock import from_us, optional_from_us, to_us
from queuert_sqlite.statements import JOB_COLUMN_COUNT

_STATUSES = {status.value: status for status in JobStatus}


def _error(text: str | None) -> JobError | None:
    return None if text is None else JobError.from_json(text)


def job_from_row(row: Sequence[Any]) -> JobRecord:
    """A job from a row in :data:`~queuert_sqlite.statements.JOB_COLUMNS` order."""
    return job_record(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        _STATUSES[row[5]],
        row[6],
        row[7],
        row[8],
        row[9],
        from_us(row[10]),
        from_us(row[11]),
        from_us(row[12]),
        row[13],
        optional_from_us(row[14]),
        row[15],
        _error(row[16]),
        row[17],
        optional_from_us(row[18]),
        row[19],
        bool(row[20]),
    )


def completed_from_row(row: Sequence[Any]) -> JobRecord:
    """A job from a row of ``Statements.complete_job``: the job's columns, then the
    JSON array of the queues its completion unblocked."""
    record = job_from_row(row)
    queues = json.loads(row[JOB_COLUMN_COUNT])
    return dataclasses.replace(record, unblocked_queues=tuple(queues)) if queues else record


def chain_from_row(row: Sequence[Any]) -> ChainRecord:
    """A chain from a row of :attr:`~queuert_sqlite.statements.Statements.chain_select`."""
    return ChainRecord(
        id=row[0],
        chain_name=row[1],
        status=_STATUSES[row[2]],
        input=row[3],
        output=row[4],
        error=_error(row[5]),
        last_job_id=row[6],
        last_queue=row[7],
        created_at=from_us(row[8]),
        updated_at=from_us(row[9]),
        completed_at=optional_from_us(row[10]),
        dedup_key=row[11],
    )


def acquisition_order(job: JobRecord) -> tuple[Any, ...]:
    """Sort key matching the order in which jobs are acquired."""
    return (job.scheduled_at, -job.priority, job.id)


def new_job_row(job: NewJob, now: int) -> tuple[Any, ...]:
    """The values of a new job's row, in the order ``insert_job`` and
    ``insert_next_job`` take them (created and updated at ``now``)."""
    return (
        job.id,
        job.chain_id,
        job.chain_name,
        job.queue,
        job.position,
        job.input,
        job.max_attempts,
        job.priority,
        scheduled_us(job.scheduled_at, job.delay_ms, now),
        now,
        now,
        job.trace_context,
    )


def scheduled_us(scheduled_at: datetime | None, delay_ms: int, now: int) -> int:
    """The stored time (microseconds) at which a job is due: ``scheduled_at``, or
    ``delay_ms`` after ``now``."""
    if scheduled_at is not None:
        return to_us(scheduled_at, "scheduled_at")
    return now + delay_ms * 1000
