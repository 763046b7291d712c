"""Splitting a ``mongodb://`` or ``mongodb+srv://`` URL into what PyMongo reads and
queuert's own options.

The path names the database (as in MongoDB's own URI format, where it is also
the default authentication database); ``collection_prefix`` in the query is
queuert's and is removed before PyMongo sees the URL. Nothing here resolves
hosts: ``mongodb+srv`` records are looked up by PyMongo when it connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from queuert.errors import ConfigurationError
from queuert.urls import redact_url
from queuert_mongodb.names import (
    DEFAULT_DATABASE,
    DEFAULT_PREFIX,
    validate_database,
    validate_prefix,
)

SCHEMES = ("mongodb", "mongodb+srv")
QUEUERT_OPTIONS = ("collection_prefix",)


@dataclass(frozen=True, slots=True)
class MongoUrl:
    """A parsed URL: ``client_url`` for :class:`pymongo.AsyncMongoClient`, the database
    and the collection prefix queuert uses."""

    client_url: str
    database: str
    collection_prefix: str


def parse_url(url: object) -> MongoUrl:
    """Parse ``url``. Raises :class:`~queuert.errors.ConfigurationError` (with any
    password hidden) for another scheme, a URL without hosts, an invalid database
    name or prefix, or a queuert option given twice."""
    if not isinstance(url, str):
        raise ConfigurationError(f"a MongoDB URL must be a string, got {url!r}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url.strip())
    except ValueError as exc:
        raise ConfigurationError(f"invalid MongoDB URL {shown!r}: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise ConfigurationError(
            f"invalid MongoDB URL {shown!r}: the scheme must be 'mongodb' or 'mongodb+srv'"
        )
    if not parts.netloc.rpartition("@")[2]:
        raise ConfigurationError(f"invalid MongoDB URL {shown!r}: it names no host")
    if parts.fragment:
        raise ConfigurationError(f"invalid MongoDB URL {shown!r}: it must not have a fragment")
    path = unquote(parts.path[1:]) if parts.path.startswith("/") else ""
    if "/" in path:
        raise ConfigurationError(
            f"invalid MongoDB URL {shown!r}: the path names one database, got {path!r}"
        )
    try:
        database = validate_database(path) if path else DEFAULT_DATABASE
    except ConfigurationError as exc:
        raise ConfigurationError(f"invalid MongoDB URL {shown!r}: {exc}") from None
    found: dict[str, str] = {}
    kept: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in QUEUERT_OPTIONS:
            if key in found:
                raise ConfigurationError(f"invalid MongoDB URL {shown!r}: {key!r} is given twice")
            found[key] = value
        else:
            kept.append((key, value))
    prefix = found.get("collection_prefix", DEFAULT_PREFIX)
    try:
        validate_prefix(prefix)
    except ConfigurationError as exc:
        raise ConfigurationError(f"invalid MongoDB URL {shown!r}: {exc}") from None
    client_url = urlunsplit(parts._replace(query=urlencode(kept, safe=":,/")))
    return MongoUrl(client_url=client_url, database=database, collection_prefix=prefix)
