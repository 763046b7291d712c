"""Adapters built for their configuration only, for the synchronous client: it
runs their statements on Django's own connection, never on connections of theirs."""

from __future__ import annotations

from typing import Any

from queuert.errors import ConfigurationError
from queuert.ports import NotifyAdapter, StateAdapter


def state_adapter(url: str) -> StateAdapter[Any]:
    """The state adapter of ``url`` (``sqlite:`` or ``postgresql:``), connected to
    nothing. Raises ConfigurationError when its distribution is not installed."""
    if url.startswith("sqlite:"):
        try:
            from queuert_sqlite import SqliteStateAdapter
            from queuert_sqlite.urls import parse_url
        except ImportError:
            raise ConfigurationError(
                "queuert on Django's SQLite database needs queuert-sqlite: "
                "pip install 'queuert-django[sqlite]'"
            ) from None
        path, options = parse_url(url)
        return SqliteStateAdapter(path, **options)
    raise ConfigurationError("the PostgreSQL synchronous client is not available yet")


def notify_adapter(url: str | None) -> NotifyAdapter | None:
    """The notify adapter of ``url`` for its synchronous publisher, or None."""
    if url is None:
        return None
    raise ConfigurationError("synchronous notifications are not available yet")
