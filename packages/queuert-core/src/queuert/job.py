"""What a handler receives: the typed job, and the markers its phases return."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from queuert.blockers import Blockers
from queuert.records import JobRecord

InT = TypeVar("InT")

NO_BLOCKERS = Blockers(())
"""The blockers of a job that waited on none."""


@dataclass(frozen=True, slots=True)
class Job(Generic[InT]):
    """A leased job as its handler sees it; ``input`` is decoded to the queue's type."""

    id: str
    chain_id: str
    chain_name: str
    queue: str
    attempt: int
    max_attempts: int
    input: InT
    created_at: datetime
    scheduled_at: datetime
    record: JobRecord
    blockers: Blockers = NO_BLOCKERS
    """The chains the job waited on, in the order given, with their outputs (read
    them typed with ``blockers[i].output(chain)``); read before the handler runs for
    every job created with blockers, empty for any other job."""


@dataclass(frozen=True, slots=True)
class Continuation:
    """Returned by ``enqueue_job``: the chain goes on with job ``job_id`` on ``queue``.

    Return it from the finalize callback (and the handler) to say the job
    continued its chain instead of ending it with an output.
    """

    job_id: str
    queue: str
