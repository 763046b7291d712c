"""Conversion of result rows into queuert records."""

from __future__ import annotations

import dataclasses

import asyncpg

from queuert.adapter_support import job_record as positional_job_record
from queuert.records import ChainRecord, JobError, JobRecord, JobStatus
from queuert_postgres.after_commit import Signal
from queuert_postgres.statements import JOB_COLUMN_COUNT


def job_record(row: asyncpg.Record) -> JobRecord:
    """A job from a row selected with :func:`queuert_postgres.statements.job_columns`."""
    return positional_job_record(
        row[0],
        row[1],
        row[2],
        row[3],
        row[4],
        JobStatus(row[5]),
        row[6],
        row[7],
        row[8],
        row[9],
        row[10],
        row[11],
        row[12],
        row[13],
        row[14],
        row[15],
        JobError.from_json(row[16]),
        row[17],
        row[18],
        row[19],
        row[20],
    )


def completed_record(row: asyncpg.Record) -> JobRecord:
    """A job from a row of ``Statements.complete_job(s)``: the job's columns, then the
    queues of the jobs blocked on its chain when it completed."""
    record = job_record(row)
    queues = row[JOB_COLUMN_COUNT]
    return dataclasses.replace(record, unblocked_queues=tuple(queues)) if queues else record


def completion_signals(row: asyncpg.Record) -> list[Signal]:
    """The signals of a row of ``Statements.complete_job(s)`` (see
    :mod:`queuert_postgres.after_commit`): its chain ended, and each queue of a job it
    unblocked has one scheduled. Read from the row's columns, without building the
    record the caller builds anyway."""
    signals: list[Signal] = [("chain", row[1])]  # the job columns start with id, chain_id
    signals.extend(("scheduled", queue) for queue in row[JOB_COLUMN_COUNT] or ())
    return signals


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
        dedup_key=row[11],
    )
