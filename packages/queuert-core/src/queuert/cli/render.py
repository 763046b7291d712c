"""How the command shows records: rich tables in a terminal, JSON with ``--json``."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

from queuert.control_records import WorkerRecord
from queuert.explain import Explanation
from queuert.operations import Stats
from queuert.records import ChainRecord, JobError, JobRecord
from queuert.schedules import ScheduleInfo

# Piped output is not cut to 80 columns: the lines stay whole for grep and friends.
console = Console(width=None if sys.stdout.isatty() else 200)


def plain(value: Any) -> Any:
    """``value`` as JSON-ready data: records as objects, times as ISO text, stored
    inputs and outputs decoded."""
    if isinstance(value, JobRecord | ChainRecord):
        data = {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        data["input"] = value.input_value()
        data["output"] = value.output_value()
        return data
    if isinstance(value, Explanation):
        return value.as_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def print_json(value: Any) -> None:
    print(json.dumps(plain(value), indent=2, sort_keys=False))


def _time(value: datetime | None) -> str:
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def _error(error: JobError | None) -> str:
    return "" if error is None else f"{error.type}: {error.message}"[:120]


def chains_table(chains: Sequence[ChainRecord], next_cursor: str | None) -> None:
    table = Table(title="chains")
    table.add_column("id", no_wrap=True)  # ids are copied into other commands
    for column in ("chain", "status", "current queue", "created", "ended", "error"):
        table.add_column(column, overflow="fold")
    for c in chains:
        table.add_row(
            c.id,
            c.chain_name,
            c.status.value,
            c.last_queue,
            _time(c.created_at),
            _time(c.completed_at),
            _error(c.error),
        )
    console.print(table)
    if next_cursor:
        console.print(f"more: --after {next_cursor}")


def jobs_table(jobs: Sequence[JobRecord], next_cursor: str | None, title: str = "jobs") -> None:
    table = Table(title=title)
    table.add_column("id", no_wrap=True)
    for column in ("queue", "status", "attempt", "scheduled", "leased by", "error"):
        table.add_column(column, overflow="fold")
    for j in jobs:
        table.add_row(
            j.id,
            j.queue,
            j.status.value,
            f"{j.attempt}/{j.max_attempts}",
            _time(j.scheduled_at),
            j.leased_by or "",
            _error(j.error),
        )
    console.print(table)
    if next_cursor:
        console.print(f"more: --after {next_cursor}")


def chain_detail(chain: ChainRecord, jobs: Sequence[JobRecord]) -> None:
    console.print(
        f"[bold]chain {chain.id}[/bold] {chain.chain_name}: {chain.status.value}"
        + (f", output {chain.output}" if chain.output is not None else "")
    )
    jobs_table(jobs, None, title="its jobs")
    for job in jobs:
        if job.error is not None:
            console.print(f"[bold]job {job.id}[/bold] attempt {job.attempt}: {_error(job.error)}")
            if job.error.traceback:
                console.print(job.error.traceback, markup=False, highlight=False)


def explanation(why: Explanation) -> None:
    console.print(f"[bold]{why.job_id}[/bold] ({why.queue}, {why.status.value}): {why.reason}")
    console.print(why.summary, markup=False)


def workers_table(workers: Sequence[WorkerRecord]) -> None:
    table = Table(title="workers")
    table.add_column("id", no_wrap=True)
    for column in ("host", "pid", "queues", "concurrency", "started", "last seen"):
        table.add_column(column, overflow="fold")
    for w in workers:
        table.add_row(
            w.id,
            w.host,
            str(w.pid),
            ", ".join(w.queues),
            str(w.concurrency),
            _time(w.started_at),
            _time(w.last_seen_at),
        )
    console.print(table)


def stats_table(stats: Stats) -> None:
    statuses = ("blocked", "pending", "running", "completed", "failed", "cancelled")
    table = Table(title="jobs by queue and status")
    table.add_column("queue", overflow="fold")
    for status in statuses:
        table.add_column(status, justify="right")
    table.add_column("oldest pending (s)", justify="right")
    for q in stats.queues:
        age = "" if q.oldest_pending_age_s is None else f"{q.oldest_pending_age_s:.1f}"
        table.add_row(q.queue, *(str(q.counts.get(s, 0)) for s in statuses), age)
    console.print(table)


def schedules_data(schedules: Sequence[ScheduleInfo]) -> list[dict[str, Any]]:
    """The schedules as JSON-ready data; ``every`` in seconds."""
    rows = []
    for info in schedules:
        data = plain(info)
        data["every"] = None if info.every is None else info.every.total_seconds()
        rows.append(data)
    return rows


def schedules_table(schedules: Sequence[ScheduleInfo]) -> None:
    table = Table(title="schedules")
    table.add_column("name", no_wrap=True)
    for column in ("chain", "when", "time zone", "catch up", "next slot", "last slot"):
        table.add_column(column, overflow="fold")
    table.add_column("last chain", no_wrap=True)  # ids are copied into other commands
    for info in schedules:
        when = info.cron if info.cron is not None else f"every {info.every}"
        table.add_row(
            info.name,
            info.chain,
            when,
            info.timezone,
            info.catch_up,
            _time(info.next_slot),
            _time(info.last_slot),
            info.last_chain_id or "",
        )
    console.print(table)
