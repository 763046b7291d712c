"""Small builders shared by the PostgreSQL tests."""

from __future__ import annotations

from queuert.conformance import support
from queuert.records import JobRecord, NewJob


def new_job(queue: str = "q", *, input: str = '{"n": 1}', max_attempts: int = 3) -> NewJob:
    """The first job of a new chain."""
    return support.new_job(queue, input=input, max_attempts=max_attempts)


def continuation(job: JobRecord, *, input: str = "{}") -> NewJob:
    """The next job of ``job``'s chain, on queue ``q:next``."""
    return support.next_job(job, "q:next", input=input)
