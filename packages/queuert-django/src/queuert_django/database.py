"""The Django database queuert uses: its vendor, the driver connection of Django's
connection, and the adapter URLs the workers and the ``queuert`` command connect
with, built from the ``DATABASES`` entry (passwords never appear in errors)."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote, urlencode

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionDoesNotExist

from queuert.errors import ConfigurationError
from queuert.urls import redact_url
from queuert.validation import show
from queuert_django.conf import Config, config

VENDORS = ("postgresql", "sqlite")
"""The Django database vendors queuert runs on: Django's ``postgresql`` backend on
psycopg 3 and its ``sqlite3`` backend."""

# PostgreSQL connection options carried from DATABASES["OPTIONS"] into the URL; both
# asyncpg and libpq read them from a URL's query.
_PG_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "application_name")


def wrapper(alias: str | None = None) -> BaseDatabaseWrapper:
    """Django's connection for ``alias`` (default: ``QUEUERT["DATABASE"]``). Raises
    ConfigurationError for an alias missing from DATABASES or another vendor than
    PostgreSQL or SQLite."""
    alias = config().database if alias is None else alias
    try:
        conn = connections[alias]
    except ConnectionDoesNotExist:
        raise ConfigurationError(
            f"database alias {show(alias)} (QUEUERT['DATABASE']) is not in DATABASES"
        ) from None
    if conn.vendor not in VENDORS:
        raise ConfigurationError(
            f"database {alias!r} is on {conn.vendor!r}; queuert runs on "
            "Django's postgresql (psycopg 3) and sqlite3 backends"
        )
    return conn


def driver_connection(conn: BaseDatabaseWrapper) -> Any:
    """The driver's connection behind Django's (psycopg ``Connection`` or
    ``sqlite3.Connection``), opened now if it was not, through Django's public API."""
    conn.ensure_connection()
    return conn.connection


def state_url(alias: str | None = None, *, cfg: Config | None = None) -> str:
    """The state adapter URL of the database ``alias`` (default:
    ``QUEUERT["DATABASE"]``): ``postgresql://...`` with the ``schema`` and
    ``table_prefix`` options, or ``sqlite:////absolute/path.db``.

    Raises ConfigurationError for an unsupported vendor or an SQLite database in
    memory (workers run in other processes and could not see it)."""
    cfg = config() if cfg is None else cfg
    conn = wrapper(cfg.database if alias is None else alias)
    return url_from_settings(conn.settings_dict, vendor=conn.vendor, alias=conn.alias, cfg=cfg)


def url_from_settings(params: dict[str, Any], *, vendor: str, alias: str, cfg: Config) -> str:
    """The state adapter URL of the ``DATABASES`` entry ``params`` of ``vendor``
    (``postgresql`` or ``sqlite``); see :func:`state_url`."""
    query: dict[str, str] = {}
    if cfg.table_prefix:
        query["table_prefix"] = cfg.table_prefix
    if vendor == "sqlite":
        name = str(params.get("NAME") or "")
        if not name or name == ":memory:" or "mode=memory" in name:
            raise ConfigurationError(
                f"database {alias!r} is an SQLite database in memory; queuert's workers "
                "run in other processes and need a database file (for Django's test "
                "database: DATABASES[alias]['TEST']['NAME'] = 'test.sqlite3')"
            )
        if name.startswith("file:"):
            raise ConfigurationError(
                f"database {alias!r}: give the SQLite NAME as a path, not a file: URI"
            )
        url = "sqlite:///" + quote(os.path.abspath(name))
        return f"{url}?{urlencode(query)}" if query else url
    if vendor != "postgresql":
        raise ConfigurationError(
            f"database {alias!r} is on {vendor!r}; queuert runs on "
            "Django's postgresql (psycopg 3) and sqlite3 backends"
        )
    return _postgres_url(params, query, cfg)


def _postgres_url(params: dict[str, Any], query: dict[str, str], cfg: Config) -> str:
    user = str(params.get("USER") or "")
    password = str(params.get("PASSWORD") or "")
    host = str(params.get("HOST") or "")
    port = str(params.get("PORT") or "")
    name = str(params.get("NAME") or "")
    options: dict[str, Any] = params.get("OPTIONS") or {}
    if options.get("service") and not name:
        raise ConfigurationError(
            "a PostgreSQL database given by 'service' alone cannot be reached by queuert's "
            "workers; give NAME, HOST and USER"
        )
    if cfg.schema:
        query["schema"] = cfg.schema
    for key in _PG_OPTIONS:
        if options.get(key):
            query[key] = str(options[key])
    userinfo = ""
    if user:
        userinfo = quote(user, safe="")
        if password:
            userinfo += ":" + quote(password, safe="")
        userinfo += "@"
    netloc = userinfo
    if host.startswith("/"):
        query["host"] = host  # a Unix socket directory
    elif host:
        netloc += f"[{host}]" if ":" in host else quote(host, safe="")
    if port:
        if not port.isdigit():
            raise ConfigurationError(f"PORT must be a number, got {port[:20]!r}")
        if host.startswith("/"):
            query["port"] = port
        else:
            netloc += f":{port}"
    url = f"postgresql://{netloc}/{quote(name, safe='')}"
    return f"{url}?{urlencode(query)}" if query else url


def notify_url(cfg: Config | None = None) -> str | None:
    """The notify adapter URL: ``None`` (workers poll), the PostgreSQL database's own
    URL for ``NOTIFY = "database"``, or the URL given."""
    cfg = config() if cfg is None else cfg
    if cfg.notify is None or cfg.notify == "none":
        return None
    if cfg.notify == "database":
        if wrapper(cfg.database).vendor != "postgresql":
            raise ConfigurationError(
                "QUEUERT['NOTIFY'] = 'database' needs PostgreSQL (LISTEN/NOTIFY); on SQLite "
                "leave it None (workers poll) or give a redis:// URL"
            )
        url = state_url(cfg=cfg)
        return url
    return cfg.notify


def shown(url: str) -> str:
    """``url`` with its secrets replaced, for messages."""
    return redact_url(url)
