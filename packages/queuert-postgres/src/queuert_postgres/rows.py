"""Conversion of result rows into queuert records."""

from __future__ import annotations

import asyncpg

from queuert.records import ChainRecord, JobError, JobRecord, JobStatus


def job_record(row: asyncpg.Record) -> JobRecord:
    """A job from a row selected with :func:`queuert_postgres.statements.job_columns`."""
    return JobRecord(
        id=row[0],
        chain_id=row[1],
        chain_name=row[2],
        queue=row[3],
        position=row[4],
        status=JobStatus(row[5]),
        input=row[6],
        attempt=row[7],
        max_attempts=row[8],
        priority=row[9],
        scheduled_at=row[10],
        created_at=row[11],
        updated_at=row[12],
        leased_by=row[13],
        leased_until=row[14],
        output=row[15],
        error=JobError.from_json(row[16]),
        next_job_id=row[17],
        completed_at=row[18],
    )


def chain_record(row: asyncpg.Record) -> ChainRecord:
    """A chain from a row in the order of ``Statements.get_chain``."""
    return ChainRecord(
        id=row[0],
        chain_name=row[1],
        status=JobStatus(row[2]),
        input=row[3],
        output=row[4],
        error=JobError.from_json(row[5]),
        last_job_id=row[6],
        last_queue=row[7],
        created_at=row[8],
        updated_at=row[9],
        completed_at=row[10],
    )
