"""Small builders shared by the PostgreSQL tests."""

from __future__ import annotations

from queuert.ids import new_id
from queuert.records import NewJob


def new_job(queue: str = "q", *, input: str = '{"n": 1}', max_attempts: int = 3) -> NewJob:
    """The first job of a new chain."""
    job_id = new_id()
    return NewJob(
        id=job_id,
        chain_id=job_id,
        chain_name=queue.split(":", 1)[0],
        queue=queue,
        position=0,
        input=input,
        max_attempts=max_attempts,
    )
