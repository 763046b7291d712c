"""Configuration by URL: ``sqlite:///relative.db``, ``sqlite:////absolute.db``,
``sqlite://:memory:``."""

from __future__ import annotations

from typing import TypedDict
from urllib.parse import parse_qsl, unquote, urlsplit

from queuert.errors import ConfigurationError
from queuert.urls import redact_url
from queuert.validation import show
from queuert_sqlite.adapter import SqliteStateAdapter
from queuert_sqlite.connections import MEMORY


class SqliteOptions(TypedDict, total=False):
    """Constructor arguments of :class:`SqliteStateAdapter` other than ``path``."""

    table_prefix: str
    busy_timeout_ms: int


async def from_url(url: str) -> SqliteStateAdapter:
    """The adapter a ``sqlite:`` URL describes. Opens nothing yet.

    ``sqlite:///jobs.db`` is relative to the working directory,
    ``sqlite:////var/lib/app/jobs.db`` is absolute, and ``sqlite://:memory:`` (or
    ``sqlite:///:memory:``) is an in-memory database. Query options:
    ``table_prefix``, ``busy_timeout_ms``.

    Raises :class:`~queuert.errors.ConfigurationError` naming what is wrong: another
    scheme, a host, a missing path, an unknown or malformed option.
    """
    path, options = parse_url(url)
    return SqliteStateAdapter(path, **options)


def parse_url(url: str) -> tuple[str, SqliteOptions]:
    """The database path and constructor options a URL describes."""
    if not isinstance(url, str):
        raise ConfigurationError(f"SQLite URL must be a string: {show(url)}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(f"invalid SQLite URL {shown!r}: {exc}") from None
    if parts.scheme != "sqlite":
        raise ConfigurationError(f"not a sqlite: URL: {shown!r}")
    if parts.fragment:
        raise ConfigurationError(f"SQLite URL must not have a fragment: {shown!r}")
    if parts.netloc == MEMORY and parts.path in ("", "/"):
        path = MEMORY
    elif parts.netloc:
        raise ConfigurationError(
            f"SQLite URL has a host: {shown!r}; write sqlite:///relative.db, "
            "sqlite:////absolute/path.db or sqlite://:memory:"
        )
    else:
        path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
        if not path:
            raise ConfigurationError(
                f"SQLite URL names no database file: {shown!r}; write sqlite:///relative.db, "
                "sqlite:////absolute/path.db or sqlite://:memory:"
            )
    options: SqliteOptions = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            raise ConfigurationError(f"SQLite URL option {show(key)} given twice: {shown!r}")
        if key == "table_prefix":
            options["table_prefix"] = value
        elif key == "busy_timeout_ms":
            try:
                options["busy_timeout_ms"] = int(value)
            except ValueError:
                raise ConfigurationError(
                    f"SQLite URL option {key}={show(value)} is not an integer: {shown!r}"
                ) from None
        else:
            raise ConfigurationError(
                f"unknown SQLite URL option {show(key)} in {shown!r}; known: "
                "table_prefix, busy_timeout_ms"
            )
    return path, options
