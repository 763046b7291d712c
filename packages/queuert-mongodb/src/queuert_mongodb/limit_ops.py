"""Acquisition under a concurrency limit (capability ``concurrency_limits``;
documents and the reason it is race-free in :mod:`queuert_mongodb.limits`)."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from pymongo.asynchronous.client_session import AsyncClientSession

from queuert.records import JobRecord
from queuert_mongodb import limits, queries
from queuert_mongodb.base import MongoBase
from queuert_mongodb.claims import claim_candidates, find_candidates
from queuert_mongodb.errors import upsert_by_key

# Each round takes candidates past keys that filled up in the previous one; a round
# never passes over more keys than there are running or candidate jobs.
_MAX_ROUNDS = 50


class LimitOps(MongoBase):
    async def acquire_limited_jobs(
        self,
        *,
        tx: AsyncClientSession | None,
        queue: str,
        limit: int,
        owner: str,
        lease_ms: int,
        concurrency_limit: int,
        per_key: bool,
    ) -> list[JobRecord]:
        """As the port says, in ``tx`` or a transaction of the adapter's own: write the
        queue's turn document, count the running jobs, pick within the room left,
        claim. A concurrent limited acquisition of the queue conflicts on the turn
        document: without ``tx`` this runs again once it ended; in ``tx`` it raises
        :class:`~queuert.errors.TransientStateError` for core to retry. Round trips:
        four plus the commit, and one more per key that fills up while picking."""
        if limit <= 0:
            return []

        async def work(session: AsyncClientSession) -> list[JobRecord]:
            await upsert_by_key(
                self._limits.update_one(
                    limits.turn_filter(queue), limits.TURN_UPDATE, upsert=True, session=session
                )
            )
            cursor = await self._jobs.aggregate(
                limits.running_pipeline(queue, per_key), session=session
            )
            room = limits.room_by_key(await cursor.to_list(None), concurrency_limit)
            if per_key:
                found = await self._pick_per_key(session, queue, room, concurrency_limit, limit)
            else:
                left = min(limit, room.get(None, concurrency_limit))
                found = []
                if left > 0:
                    found = await find_candidates(
                        self._jobs,
                        session,
                        queries.eligible_query([queue]),
                        queries.ACQUIRE_SORT,
                        left,
                    )
            won = await claim_candidates(
                self._jobs, session, found, owner=owner, lease_ms=lease_ms, token=uuid4().hex
            )
            won.sort(key=lambda job: (job.scheduled_at, -job.priority, job.id))
            return won

        return await self._write(tx, work)

    async def _pick_per_key(
        self,
        session: AsyncClientSession,
        queue: str,
        room: dict[str | None, int],
        concurrency_limit: int,
        limit: int,
    ) -> list[dict[str, Any]]:
        picked: list[dict[str, Any]] = []
        base = queries.eligible_query([queue])
        for _ in range(_MAX_ROUNDS):
            wanted = limit - len(picked)
            if wanted <= 0:
                break
            query = limits.keyed_candidates_query(
                base, limits.full_keys(room), [doc["_id"] for doc in picked]
            )
            found = await find_candidates(self._jobs, session, query, queries.ACQUIRE_SORT, wanted)
            taken, passed_over = limits.pick_within_room(found, room, concurrency_limit, wanted)
            picked.extend(taken)
            if not passed_over:
                break
        return picked
