"""Claiming a batch of jobs (acquisition, reaping) without locks.

Round trips, uncontended: acquiring one job takes one (``find_one_and_update``);
acquiring a batch takes two (:mod:`queuert_mongodb.acquisition`: read the
candidates with the server's now, claim them with one ``update_many``); reaping
a batch takes three (pick, claim, read back, since its update depends on each
job). Under contention each job lost to another call costs one more round trip
(``find_one_and_update``, which the server re-evaluates on a conflict)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from queuert.records import JobRecord
from queuert_mongodb import queries
from queuert_mongodb.acquisition import (
    candidates_pipeline,
    claim_update,
    claimed_document,
    server_now,
    unchanged_query,
)
from queuert_mongodb.documents import Document, job_from_document
from queuert_mongodb.updates import acquire_update

Collection = AsyncCollection[dict[str, Any]]


async def find_candidates(
    jobs: Collection,
    session: AsyncClientSession | None,
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` jobs of ``query`` in ``sort`` order, with the server's now."""
    cursor = await jobs.aggregate(candidates_pipeline(query, sort, limit), session=session)
    return await cursor.to_list(None)


async def acquire_batch(
    jobs: Collection,
    session: AsyncClientSession | None,
    query: dict[str, Any],
    sort: list[tuple[str, int]],
    limit: int,
    *,
    owner: str,
    lease_ms: int,
) -> list[JobRecord]:
    """Lease up to ``limit`` jobs of ``query`` (``pending`` and due) in ``sort`` order
    to ``owner``: one round trip for one job, two for a batch nobody contends (see
    the module documentation)."""
    token = uuid4().hex
    fallback = acquire_update(owner=owner, lease_ms=lease_ms, token=token)
    if limit == 1:
        return await _claim_one_by_one(jobs, session, query, sort, 1, fallback, [])
    found = await find_candidates(jobs, session, query, sort, limit)
    won = await claim_candidates(jobs, session, found, owner=owner, lease_ms=lease_ms, token=token)
    if len(won) == len(found):
        return won
    return await _claim_one_by_one(jobs, session, query, sort, limit, fallback, won)


async def claim_candidates(
    jobs: Collection,
    session: AsyncClientSession | None,
    found: Sequence[Document],
    *,
    owner: str,
    lease_ms: int,
    token: str,
) -> list[JobRecord]:
    """Lease those of the candidates ``found`` (read with
    :func:`find_candidates`) that are unchanged since, and return them: with no
    further read when all were, else reading back what carries ``token``."""
    if not found:
        return []
    now = server_now(found)
    update = claim_update(owner=owner, lease_ms=lease_ms, token=token, now=now)
    result = await jobs.update_many(unchanged_query(found), update, session=session)
    if result.modified_count == len(found):
        return [
            job_from_document(
                claimed_document(doc, owner=owner, lease_ms=lease_ms, token=token, now=now)
            )
            for doc in found
        ]
    if not result.modified_count:
        return []
    ids = [doc["_id"] for doc in found]
    claimed = await jobs.find(queries.claimed_query(ids, token), session=session).to_list(None)
    by_id = {document["_id"]: document for document in claimed}
    return [job_from_document(by_id[i]) for i in ids if i in by_id]


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
