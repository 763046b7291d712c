"""The adapters of the synchronous client, built from the adapter URLs for their
configuration only: the client runs their statements on Django's own connection.
A PostgreSQL state adapter is given a pool of no connections (``min_size=0``) that
nothing uses."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from queuert import urls
from queuert.ports import NotifyAdapter, StateAdapter
from queuert_django.aio import run_async


def _no_connections(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "min_size"]
    return urlunsplit(parts._replace(query=urlencode([*query, ("min_size", "0")])))


def configured_adapters(
    state_url: str, notify_url: str | None
) -> tuple[StateAdapter[Any], NotifyAdapter | None]:
    """The state adapter of ``state_url`` and the notify adapter of ``notify_url``
    (None: none), opening no connection. Raises ConfigurationError for a bad URL or
    a scheme whose adapter is not installed."""
    if state_url.startswith("postgresql:"):
        state_url = _no_connections(state_url)

    async def build() -> tuple[StateAdapter[Any], NotifyAdapter | None]:
        state = await urls.state_from_url(state_url)
        notify = None if notify_url is None else await urls.notify_from_url(notify_url)
        return state, notify

    return run_async(build)
