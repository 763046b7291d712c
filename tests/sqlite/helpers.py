"""Small builders shared by the SQLite tests."""

from __future__ import annotations

from queuert.ids import new_id
from queuert.records import NewJob


def new_job(queue: str = "q", **overrides: object) -> NewJob:
    """A first job of a new chain on ``queue``."""
    job_id = new_id()
    fields: dict[str, object] = {
        "id": job_id,
        "chain_id": job_id,
        "chain_name": queue.split(":")[0],
        "queue": queue,
        "position": 0,
        "input": '{"n": 1}',
        "max_attempts": 3,
    }
    fields.update(overrides)
    return NewJob(**fields)  # type: ignore[arg-type]
