"""Claiming a batch of jobs (acquisition, reaping) without locks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from queuert.records import JobRecord
from queuert_mongodb import queries
from queuert_mongodb.documents import job_from_document


async def claim_batch(
    jobs: AsyncCollection[dict[str, Any]],
    session: AsyncClientSession | None,
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    limit: int,
    token: str,
    still: Callable[[Sequence[str]], dict[str, Any]],
    update: list[dict[str, Any]],
) -> list[JobRecord]:
    """Claim up to ``limit`` jobs of ``query`` in ``sort`` order with ``update`` (which
    writes ``token``) and return what this call won.

    One job takes one round trip (``find_one_and_update``). More, uncontended, take
    three whatever ``limit``: pick candidate ids, claim those ``still`` matching with
    one ``update_many``, read back the jobs carrying ``token``. When a concurrent call
    won some candidates first, the rest is claimed one job at a time with
    ``find_one_and_update``, which the server re-evaluates on a conflict, so each step
    takes a job nobody else has while one is left and a busy queue never leaves this
    call empty-handed."""
    if limit == 1:
        return await _claim_one_by_one(jobs, session, query, sort, 1, update, [])
    candidates = [
        document["_id"]
        for document in await jobs.find(
            query, {"_id": 1}, sort=sort, limit=limit, session=session
        ).to_list(None)
    ]
    if not candidates:
        return []
    won: list[JobRecord] = []
    result = await jobs.update_many(still(candidates), update, session=session)
    if result.modified_count:
        claimed = await jobs.find(
            queries.claimed_query(candidates, token), session=session
        ).to_list(None)
        won.extend(job_from_document(document) for document in claimed)
    if len(won) == len(candidates):
        return won
    return await _claim_one_by_one(jobs, session, query, sort, limit, update, won)


async def _claim_one_by_one(
    jobs: AsyncCollection[dict[str, Any]],
    session: AsyncClientSession | None,
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    limit: int,
    update: list[dict[str, Any]],
    won: list[JobRecord],
) -> list[JobRecord]:
    """Add to ``won`` the first job of ``query`` after ``update``, until there are
    ``limit`` or none is left."""
    while len(won) < limit:
        document = await jobs.find_one_and_update(
            query, update, sort=sort, return_document=ReturnDocument.AFTER, session=session
        )
        if document is None:
            break
        won.append(job_from_document(document))
    return won
