"""Rendering pages: the autoescaping template environment and the answers every
page shares (a page, a refusal, a page not found)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from queuert import JobStatus, Queuert, QueuertError, ValidationError
from queuert_dashboard.auth import Auth
from queuert_dashboard.filters import refresh_seconds

SHOWN_CHARS = 400
"""Values longer than this are cut on list and chain pages, with a link to the full one."""


def age(delta: timedelta) -> str:
    """``delta`` in its largest whole unit (``42 s``, ``5 min``, ``3 h``, ``2 d``)."""
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3600} h"
    return f"{seconds // 86_400} d"


def cut(value: str | None) -> str:
    if value is None:
        return ""
    return value if len(value) <= SHOWN_CHARS else value[:SHOWN_CHARS] + "…"


def _templates() -> Jinja2Templates:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).with_name("templates")),
        # Every value is escaped: inputs, outputs and errors are the application's data.
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["cut"] = cut
    environment.filters["age"] = age
    return Jinja2Templates(env=environment)


class Renderer:
    """Renders the templates of the dashboard of ``app``."""

    def __init__(self, app: Queuert[Any], auth: Auth | None) -> None:
        self.app = app
        self.auth = auth
        self.templates = _templates()

    def render(
        self, request: Request, name: str, context: dict[str, Any], status_code: int = 200
    ) -> Response:
        try:
            refresh = refresh_seconds(request)
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

    def error(self, request: Request, message: str, status_code: int) -> Response:
        return self.render(request, "error.html", {"message": message}, status_code=status_code)

    def refused(self, request: Request, exc: QueuertError, status_code: int = 400) -> Response:
        return self.error(request, str(exc), status_code)

    def not_found(self, request: Request, what: str) -> Response:
        return self.error(request, f"no {what}", 404)
