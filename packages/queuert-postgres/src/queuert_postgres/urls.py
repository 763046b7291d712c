"""Splitting a ``postgresql://`` URL into the part asyncpg reads and queuert's options."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from queuert.errors import ConfigurationError
from queuert.urls import redact_message, redact_url
from queuert.validation import show

SCHEMES = ("postgresql", "postgres")


def redact(url: str) -> str:
    """The URL with its secrets replaced, fit for an error message (see
    :func:`queuert.urls.redact_url`)."""
    return redact_url(url)


def split_url(url: str, *, options: Collection[str]) -> tuple[str, dict[str, str]]:
    """Return the URL without the query parameters named in ``options`` (asyncpg would
    send unknown parameters to the server as settings) and those parameters.

    Raises :class:`~queuert.errors.ConfigurationError` for another scheme or a
    parameter given twice.
    """
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ConfigurationError(
            f"invalid PostgreSQL URL {redact(url)!r}: {redact_message(str(exc), url)}"
        ) from None
    if parts.scheme not in SCHEMES:
        raise ConfigurationError(
            f"invalid PostgreSQL URL {redact(url)!r}: the scheme must be one of {SCHEMES}"
        )
    found: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in options:
            if key in found:
                raise ConfigurationError(
                    f"invalid PostgreSQL URL {redact(url)!r}: {key!r} is given twice"
                )
            found[key] = value
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), found


def int_option(url: str, options: dict[str, str], name: str, default: int, minimum: int) -> int:
    """The integer option ``name`` (``default`` when absent), at least ``minimum``."""
    raw = options.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ConfigurationError(
            f"invalid PostgreSQL URL {redact(url)!r}: {name}={show(raw)} must be an integer "
            f">= {minimum}"
        )
    return value


def database_name(dsn: str) -> str | None:
    """The database ``dsn`` (a ``postgresql://`` URL) names in its path; ``None`` when
    it names none there, or also names one in its query (the driver's defaults or
    precedence decide then), or is no such URL."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return None
    if parts.scheme not in SCHEMES or any(
        key in ("database", "dbname") for key, _ in parse_qsl(parts.query)
    ):
        return None
    return unquote(parts.path.lstrip("/")) or None
