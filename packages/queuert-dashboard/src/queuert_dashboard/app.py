"""The dashboard's routes: read-only pages over a queuert application's read API."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from queuert import JobNotFoundError, JobStatus, Queuert, QueuertError, ValidationError
from queuert.validation import show
from queuert_dashboard.actions import CSRF_COOKIE, Auth, allowed, csrf_ok, new_csrf_token
from queuert_dashboard.explain import explain

PAGE_SIZE = 50
"""Rows per page of the chain and job lists."""

WAIT_SAMPLE = 1_000
"""The overview's longest wait per queue is read from this many of the oldest
pending jobs."""

SHOWN_CHARS = 400
"""Values longer than this are cut on list and chain pages, with a link to the full one."""


def _templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        # Every value is escaped: inputs, outputs and errors are the application's data.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["cut"] = _cut
    return Jinja2Templates(env=environment)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} d"


def _cut(value: str | None) -> str:
    if value is None:
        return ""
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…"


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name, "").strip()
    return value or None


def _refresh(request: Request) -> int | None:
    """Seconds between reloads asked for with ``?refresh=N`` (1..3600), if any."""
    text = _param(request, "refresh")
    if text is None:
        return None
    if not text.isdigit() or not 1 <= int(text) <= 3600:
        raise ValidationError(f"refresh must be whole seconds within 1..3600, got {show(text)}")
    return int(text)


def _page_size(request: Request) -> int:
    text = _param(request, "limit")
    if text is None:
        return PAGE_SIZE
    try:
        return int(text)
    except ValueError:
        raise ValidationError(f"limit must be an integer, got {show(text)}") from None


ACTIONS = ("cancel", "delete")
"""What can be done to a chain from its page."""


class Dashboard:
    """The pages, bound to one application; actions only with ``auth``."""

    def __init__(self, app: Queuert[Any], auth: Auth | None) -> None:
        self.app = app
        self.auth = auth
        self.templates = _templates()

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        try:
            refresh = _refresh(request)
        except ValidationError as exc:
            refresh = None
            if name != "error.html":
                return self.refused(request, exc)
        return self.templates.TemplateResponse(
            request,
            name,
            {
                "statuses": list(JobStatus),
                "shown_chars": SHOWN_CHARS,
                "read_only": self.auth is None,
                "refresh": refresh,
                **context,
            },
            status_code=status_code,
        )

    def refused(self, request: Request, exc: QueuertError) -> Response:
        return self.render(request, "error.html", {"message": str(exc)}, status_code=400)

    def not_found(self, request: Request, what: str) -> Response:
        return self.render(request, "error.html", {"message": f"no {what}"}, status_code=404)

    async def overview(self, request: Request) -> Response:
        read = await self.app.state.count_jobs(tx=None)
        counts: dict[tuple[str, JobStatus], int] = Counter(
            {(count.queue, count.status): count.count for count in read.counts}
        )
        # Per queue, how long the longest-waiting pending job has waited for a worker,
        # on the database's clock (the read's own "now").
        waited = {
            count.queue: _age(read.now - count.oldest_scheduled_at)
            for count in read.counts
            if count.status is JobStatus.PENDING
            and count.oldest_scheduled_at is not None
            and count.oldest_scheduled_at <= read.now
        }
        sampled = False
        queues = sorted({queue for queue, _ in counts} | set(self.app.queues))
        totals = {s: sum(n for (_, st), n in counts.items() if st is s) for s in JobStatus}
        return self.render(
            request,
            "overview.html",
            {
                "queues": queues,
                "counts": counts,
                "totals": totals,
                "sampled": sampled,
                "wait_sample": WAIT_SAMPLE,
                "waited": waited,
                "chains": sorted(self.app.chains.values(), key=lambda c: c.name),
            },
        )

    async def chains(self, request: Request) -> Response:
        wanted = _param(request, "id")
        if wanted is not None:
            return RedirectResponse(request.url_for("chain", chain_id=wanted), status_code=303)
        status = _param(request, "status")
        chain = _param(request, "chain")
        try:
            page = await self.app.list_chains(
                status=status,
                chain=chain,
                after=_param(request, "after"),
                limit=_page_size(request),
            )
        except ValidationError as exc:
            return self.refused(request, exc)
        return self.render(
            request,
            "chains.html",
            {
                "page": page,
                "status": status or "",
                "chain": chain or "",
                "chain_names": sorted(self.app.chains),
                "next_query": _next_query(request, page.next_cursor),
            },
        )

    async def chain(self, request: Request) -> Response:
        chain_id = request.path_params["chain_id"]
        try:
            record = await self.app.get_chain(chain_id)
        except ValidationError as exc:
            return self.refused(request, exc)
        if record is None:
            return self.not_found(request, f"chain has id {show(chain_id)}")
        jobs = []
        after = None
        while True:
            page = await self.app.list_jobs(chain_id=chain_id, after=after, limit=1_000)
            jobs.extend(page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        jobs.sort(key=lambda job: job.position)
        now = datetime.now(UTC)
        explanations = {job.id: explain(job, now) for job in jobs}
        return self.render(
            request, "chain.html", {"chain": record, "jobs": jobs, "explanations": explanations}
        )

    async def _refuse_action(self, request: Request) -> Response | None:
        if self.auth is None:
            return self.render(
                request,
                "error.html",
                {"message": "this dashboard is read-only: it was created without auth"},
                status_code=403,
            )
        if not await allowed(self.auth, request):
            response = self.render(
                request, "error.html", {"message": "not authorised"}, status_code=401
            )
            response.headers["WWW-Authenticate"] = 'Basic realm="queuert"'
            return response
        return None

    async def confirm(self, request: Request) -> Response:
        refused = await self._refuse_action(request)
        if refused is not None:
            return refused
        chain_id, action = request.path_params["chain_id"], request.path_params["action"]
        if action not in ACTIONS:
            return self.not_found(request, f"action {show(action)}")
        try:
            record = await self.app.get_chain(chain_id)
        except ValidationError as exc:
            return self.refused(request, exc)
        if record is None:
            return self.not_found(request, f"chain has id {show(chain_id)}")
        token = new_csrf_token()
        response = self.render(
            request, "confirm.html", {"chain": record, "action": action, "token": token}
        )
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            path=request.scope.get("root_path") or "/",
        )
        return response

    async def act(self, request: Request) -> Response:
        refused = await self._refuse_action(request)
        if refused is not None:
            return refused
        if not await csrf_ok(request):
            return self.render(
                request,
                "error.html",
                {"message": "the form's token does not match: open the action's page again"},
                status_code=403,
            )
        chain_id, action = request.path_params["chain_id"], request.path_params["action"]
        try:
            if action == "cancel":
                await self.app.cancel_chain(chain_id)
                target = request.url_for("chain", chain_id=chain_id)
            elif action == "delete":
                await self.app.delete_chains([chain_id])
                target = request.url_for("chains")
            else:
                return self.not_found(request, f"action {show(action)}")
        except JobNotFoundError:
            return self.not_found(request, f"chain has id {show(chain_id)}")
        except ValidationError as exc:
            return self.refused(request, exc)
        return RedirectResponse(target, status_code=303)

    async def jobs(self, request: Request) -> Response:
        status = _param(request, "status")
        queue = _param(request, "queue")
        chain_id = _param(request, "chain_id")
        try:
            page = await self.app.list_jobs(
                status=status,
                queue=queue,
                chain_id=chain_id,
                after=_param(request, "after"),
                limit=_page_size(request),
            )
        except ValidationError as exc:
            return self.refused(request, exc)
        return self.render(
            request,
            "jobs.html",
            {
                "page": page,
                "status": status or "",
                "queue": queue or "",
                "chain_id": chain_id or "",
                "queues": sorted(self.app.queues),
                "next_query": _next_query(request, page.next_cursor),
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
        return self.render(
            request, "job.html", {"job": record, "explanation": explain(record, datetime.now(UTC))}
        )


def _next_query(request: Request, cursor: str | None) -> str | None:
    """The query string of the next page: the same filters, after ``cursor``."""
    if cursor is None:
        return None
    params = {k: v for k, v in request.query_params.items() if k != "after" and v}
    params["after"] = cursor
    return str(request.url.include_query_params(**params).query)


def create_app(app: Queuert[Any], *, auth: Auth | None = None) -> Starlette:
    """The dashboard of ``app`` as an ASGI application: mount it in a Starlette or
    FastAPI application (``main.mount("/queuert", create_app(app))``) or serve it
    with uvicorn. Pages read through ``app``'s public API. Actions (cancel,
    delete) need ``auth``, a callable given the request that returns or awaits
    whether it may act (:func:`~queuert_dashboard.basic_auth_from_env` checks HTTP
    basic credentials); without it the dashboard is read-only and says so.
    Raises ValidationError when ``app`` is not a :class:`~queuert.Queuert` or
    ``auth`` is not callable."""
    if not isinstance(app, Queuert):
        raise ValidationError(f"app must be a Queuert application, got {show(app)}")
    if auth is not None and not callable(auth):
        raise ValidationError(f"auth must be a callable or None, got {show(auth)}")
    pages = Dashboard(app, auth)
    return Starlette(
        routes=[
            Route("/", pages.overview, name="overview"),
            Route("/chains", pages.chains, name="chains"),
            Route("/chains/{chain_id}", pages.chain, name="chain"),
            Route("/chains/{chain_id}/{action}", pages.confirm, name="confirm"),
            Route("/chains/{chain_id}/{action}", pages.act, methods=["POST"], name="act"),
            Route("/jobs", pages.jobs, name="jobs"),
            Route("/jobs/{job_id}", pages.job, name="job"),
        ]
    )
