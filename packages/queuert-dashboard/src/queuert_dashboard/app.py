"""The dashboard as an ASGI application: its routes over the pages
(:mod:`queuert_dashboard.pages`) and the actions (:mod:`queuert_dashboard.actions`)."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.routing import Route

from queuert import Queuert, ValidationError
from queuert.validation import show
from queuert_dashboard.actions import Actions
from queuert_dashboard.auth import Auth
from queuert_dashboard.pages import Pages


def create_app(app: Queuert[Any], *, auth: Auth | None = None) -> Starlette:
    """The dashboard of ``app`` as an ASGI application: mount it in a Starlette or
    FastAPI application (``main.mount("/queuert", create_app(app))``) or serve it
    with uvicorn. Pages read through ``app``'s public API. Actions (retry, cancel,
    delete) need ``auth``, a callable given the request that returns or awaits
    whether it may act (:func:`~queuert_dashboard.basic_auth_from_env` checks HTTP
    basic credentials); without it the dashboard is read-only and says so.
    Raises ValidationError when ``app`` is not a :class:`~queuert.Queuert` or
    ``auth`` is not callable."""
    if not isinstance(app, Queuert):
        raise ValidationError(f"app must be a Queuert application, got {show(app)}")
    if auth is not None and not callable(auth):
        raise ValidationError(f"auth must be a callable or None, got {show(auth)}")
    pages = Pages(app, auth)
    actions = Actions(app, auth)
    return Starlette(
        routes=[
            Route("/", pages.overview, name="overview"),
            Route("/chains", pages.chains, name="chains"),
            Route("/chains/{chain_id}", pages.chain, name="chain"),
            Route("/chains/{chain_id}/{action}", actions.confirm, name="confirm"),
            Route("/chains/{chain_id}/{action}", actions.act, methods=["POST"], name="act"),
            Route("/jobs", pages.jobs, name="jobs"),
            Route("/jobs/{job_id}", pages.job, name="job"),
            Route("/workers", pages.workers, name="workers"),
            Route("/schedules", pages.schedules, name="schedules"),
        ]
    )
