"""The read-only pages: overview, chains, a chain, jobs, a job, workers and
schedules, each read through the application's API."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from queuert import ChainRecord, JobRecord, JobStatus, Page, ValidationError, WorkerRecord
from queuert.explain import WORKER_SEEN_S
from queuert.validation import show
from queuert_dashboard.actions import available
from queuert_dashboard.explain import explain
from queuert_dashboard.filters import (
    chain_filters,
    form_values,
    job_filters,
    next_query,
    page_size,
    param,
)
from queuert_dashboard.rendering import Renderer, age

T = TypeVar("T")

RECENT_FAILURES = 5
"""How many of the latest failed chains the overview lists."""

IN_FLIGHT_READ = 1_000
"""The workers page reads at most this many running jobs to show each worker's."""

CHAIN_FIELDS = ("status", "chain", "queue", "dedup_key", "created_after", "created_before")
JOB_FIELDS = ("status", "queue", "chain_id", "created_after", "created_before")


def alive(worker: WorkerRecord, now: datetime) -> bool:
    """Whether ``worker`` recorded itself recently enough to count as running (it
    refreshes its record every few seconds)."""
    return (now - worker.last_seen_at).total_seconds() <= WORKER_SEEN_S


class Pages(Renderer):
    """The pages, bound to one application."""

    async def database_now(self) -> datetime:
        """The database's clock, which every time the store records is read on: a
        skewed clock on the dashboard's host must not call a live worker stale or a
        due job early."""
        return (await self.app.state.count_jobs(tx=None)).now

    async def overview(self, request: Request) -> Response:
        app = self.app
        read = await app.state.count_jobs(tx=None)
        counts: dict[tuple[str, JobStatus], int] = Counter(
            {(count.queue, count.status): count.count for count in read.counts}
        )
        # Per queue, how long the longest-waiting pending job has waited for a worker,
        # on the database's clock (the read's own "now").
        waited = {
            count.queue: age(read.now - count.oldest_scheduled_at)
            for count in read.counts
            if count.status is JobStatus.PENDING
            and count.oldest_scheduled_at is not None
            and count.oldest_scheduled_at <= read.now
        }
        queues = sorted({queue for queue, _ in counts} | set(app.queues))
        totals = {s: sum(n for (_, st), n in counts.items() if st is s) for s in JobStatus}
        workers = await app.list_workers()
        failures = await app.list_chains(status="failed", order="newest", limit=RECENT_FAILURES)
        return self.render(
            request,
            "overview.html",
            {
                "queues": queues,
                "counts": counts,
                "totals": totals,
                "waited": waited,
                "workers_alive": sum(alive(w, read.now) for w in workers),
                "failures": failures.items,
                "chains": sorted(app.chains.values(), key=lambda c: c.name),
            },
        )

    async def _listing(
        self,
        request: Request,
        template: str,
        read: Callable[[str | None, int], Awaitable[Page[T]]],
        context: dict[str, Any],
    ) -> Response:
        """A list page: one page of ``read(after, limit)`` with a link to the next
        one keeping the filters; a bad filter is refused."""
        try:
            page = await read(param(request, "after"), page_size(request))
        except ValidationError as exc:
            return self.refused(request, exc)
        return self.render(
            request,
            template,
            {"page": page, "next_query": next_query(request, page.next_cursor), **context},
        )

    async def chains(self, request: Request) -> Response:
        wanted = param(request, "id")
        if wanted is not None:
            return RedirectResponse(request.url_for("chain", chain_id=wanted), status_code=303)

        async def read(after: str | None, limit: int) -> Page[ChainRecord]:
            return await self.app.list_chains(**chain_filters(request), after=after, limit=limit)

        return await self._listing(
            request,
            "chains.html",
            read,
            {
                "form": form_values(request, CHAIN_FIELDS),
                "chain_names": sorted(self.app.chains),
                "queues": sorted(self.app.queues),
            },
        )

    async def jobs(self, request: Request) -> Response:
        async def read(after: str | None, limit: int) -> Page[JobRecord]:
            return await self.app.list_jobs(**job_filters(request), after=after, limit=limit)

        return await self._listing(
            request,
            "jobs.html",
            read,
            {"form": form_values(request, JOB_FIELDS), "queues": sorted(self.app.queues)},
        )

    async def chain(self, request: Request) -> Response:
        app = self.app
        chain_id = request.path_params["chain_id"]
        try:
            record = await app.get_chain(chain_id)
        except ValidationError as exc:
            return self.refused(request, exc)
        if record is None:
            return self.not_found(request, f"chain has id {show(chain_id)}")
        jobs: list[JobRecord] = []
        after = None
        while True:
            page = await app.list_jobs(chain_id=chain_id, after=after, limit=1_000)
            jobs.extend(page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        jobs.sort(key=lambda job: job.position)
        now = await self.database_now()
        blockers = {}
        dependants: list[str] = []
        if app.state.capabilities.blockers:
            for job in jobs:
                found = await app.state.get_blockers(tx=None, job_id=job.id)
                if found:
                    blockers[job.id] = found
            dependants = await app.state.list_dependent_chains(tx=None, chain_ids=[chain_id])
        return self.render(
            request,
            "chain.html",
            {
                "chain": record,
                "jobs": jobs,
                "explanations": {job.id: explain(job, now) for job in jobs},
                "blockers": blockers,
                "dependants": dependants,
                "actions": available(record),
            },
        )

    async def job(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        try:
            record = await self.app.get_job(job_id)
        except ValidationError as exc:
            return self.refused(request, exc)
        if record is None:
            return self.not_found(request, f"job has id {show(job_id)}")
        explanation = explain(record, await self.database_now())
        return self.render(request, "job.html", {"job": record, "explanation": explanation})

    async def workers(self, request: Request) -> Response:
        workers = await self.app.list_workers()
        running = await self.app.list_jobs(status="running", limit=IN_FLIGHT_READ)
        in_flight: dict[str, list[JobRecord]] = defaultdict(list)
        for job in running.items:
            if job.leased_by is not None:
                in_flight[job.leased_by].append(job)
        now = await self.database_now()
        return self.render(
            request,
            "workers.html",
            {
                "workers": workers,
                "alive": {w.id: alive(w, now) for w in workers},
                "seen_ago": {w.id: age(max(now - w.last_seen_at, timedelta(0))) for w in workers},
                "in_flight": in_flight,
                "in_flight_partial": running.next_cursor is not None,
                "seen_s": int(WORKER_SEEN_S),
            },
        )

    async def schedules(self, request: Request) -> Response:
        return self.render(
            request,
            "schedules.html",
            {"schedules": await self.app.list_schedules(), "chains_known": bool(self.app.chains)},
        )
