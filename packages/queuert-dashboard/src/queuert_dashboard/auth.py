"""Who may act (retry, cancel, delete): authentication and the CSRF token that
binds an action to its confirmation page.

``auth`` is a callable receiving the request and returning (or awaiting) whether
it may act; :func:`basic_auth_from_env` builds one that checks HTTP basic
credentials against the environment. Without ``auth`` the dashboard is read-only:
every action answers 403.

The CSRF token is a double-submit token: the confirmation page sets it in a
``SameSite=Strict`` cookie and in the form, and the action runs only when both
arrive and match.
"""

from __future__ import annotations

import base64
import binascii
import inspect
import os
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs

from starlette.requests import Request

from queuert.errors import ConfigurationError

Auth = Callable[[Request], bool | Awaitable[bool]]
"""Decides whether a request may run actions."""

CSRF_COOKIE = "queuert_csrf"
CSRF_FIELD = "csrf_token"

USER_VARIABLE = "QUEUERT_DASHBOARD_USER"
PASSWORD_VARIABLE = "QUEUERT_DASHBOARD_PASSWORD"


def basic_auth_from_env() -> Auth:
    """An ``auth`` accepting HTTP basic credentials equal to the environment's
    ``QUEUERT_DASHBOARD_USER`` and ``QUEUERT_DASHBOARD_PASSWORD`` (compared in
    constant time). Raises ConfigurationError when either is unset or empty."""
    user = os.environ.get(USER_VARIABLE, "")
    password = os.environ.get(PASSWORD_VARIABLE, "")
    if not user or not password:
        raise ConfigurationError(
            f"basic authentication needs {USER_VARIABLE} and {PASSWORD_VARIABLE} to be set"
        )
    expected = f"{user}:{password}".encode()

    def check(request: Request) -> bool:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return secrets.compare_digest(given, expected)

    return check


async def allowed(auth: Auth | None, request: Request) -> bool:
    """Whether ``request`` may run actions (never without ``auth``)."""
    if auth is None:
        return False
    verdict = auth(request)
    if inspect.isawaitable(verdict):
        verdict = await verdict
    return verdict is True


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


async def csrf_ok(request: Request) -> bool:
    """Whether the posted form's token matches the cookie's."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    body = await request.body()
    # Form fields parsed here: the form is one short urlencoded field.
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=4)
    posted = fields.get(CSRF_FIELD, [""])[0]
    return bool(cookie) and secrets.compare_digest(cookie.encode(), posted.encode())
