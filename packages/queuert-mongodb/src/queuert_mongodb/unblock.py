"""What the end of a chain does to the jobs waiting on it, run in the transaction
that ends the chain (see :mod:`queuert_mongodb.blockers` for why this is
race-free)."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from queuert_mongodb.blockers import (
    WAITING_PROJECTION,
    decrement_update,
    edges_of_query,
    failure_update,
    plan_unblocking,
    waiting_query,
)

Collection = AsyncCollection[dict[str, Any]]


async def end_chains(
    jobs: Collection, blockers: Collection, session: AsyncClientSession, ended: dict[str, str]
) -> None:
    """Unblock the jobs waiting on the chains ``ended`` (status by chain id) or fail
    them, and so on for the chains those failures end, in ``session``'s
    transaction. Two round trips per step, plus one per write."""
    while ended:
        edges = await blockers.find(
            edges_of_query(list(ended)), {"job_id": 1, "blocker_chain_id": 1}, session=session
        ).to_list(None)
        if not edges:
            return
        job_ids = list(dict.fromkeys(str(edge["job_id"]) for edge in edges))
        waiting = await jobs.find(
            waiting_query(job_ids), WAITING_PROJECTION, session=session
        ).to_list(None)
        plan = plan_unblocking(ended, edges, waiting)
        for count, ids in plan.decrements.items():
            await jobs.update_many(waiting_query(ids), decrement_update(count), session=session)
        for (chain_id, status), ids in plan.failures.items():
            await jobs.update_many(
                waiting_query(ids), failure_update(chain_id, status), session=session
            )
        ended = plan.ended
