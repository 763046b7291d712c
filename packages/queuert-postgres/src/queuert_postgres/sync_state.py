"""A PostgreSQL state adapter for :mod:`queuert.sync` only, built from a URL without
connecting: the ``postgresql`` and ``postgres`` schemes of the
``queuert.sync_state`` entry-point group (see
:func:`queuert.urls.state_for_sync`).

The synchronous API runs the adapter's operations on the caller's psycopg
``Connection`` and never on a pool of the adapter's, so a synchronous application
(Django, Flask) needs no asyncpg pool, and no event loop, to start chains. Workers
build the usual adapter (:meth:`~queuert_postgres.PostgresStateAdapter.from_url`)
from the same URL.
"""

from __future__ import annotations

from typing import NoReturn, cast

import asyncpg

from queuert.errors import AdapterError
from queuert_postgres.state import DEFAULT_SCHEMA, URL_OPTIONS, PostgresStateAdapter
from queuert_postgres.urls import split_url


class _NoPool:
    """Stands for the pool an adapter built for synchronous calls does not have:
    anything that would use it raises."""

    def __getattr__(self, name: str) -> NoReturn:
        raise AdapterError(
            "this PostgresStateAdapter was built for queuert.sync and has no connection "
            "pool: use PostgresStateAdapter.from_url (or connect) for workers and the "
            "asynchronous API"
        )


def from_url(url: str) -> PostgresStateAdapter:
    """The adapter a ``postgresql://`` URL describes (``schema`` and ``table_prefix``
    in its query, as for :meth:`PostgresStateAdapter.from_url
    <queuert_postgres.PostgresStateAdapter.from_url>`; pool sizes are ignored), for
    the synchronous API only: it opens no connection, and an operation run on it
    without a caller's connection raises :class:`~queuert.errors.AdapterError`. A
    :class:`~queuert_postgres.PostgresNotifyAdapter` on the same URL binds to it, so
    its writes carry their NOTIFY. Raises
    :class:`~queuert.errors.ConfigurationError` for a malformed URL, schema or
    prefix."""
    dsn, options = split_url(url, options=URL_OPTIONS)
    pool = cast("asyncpg.Pool[asyncpg.Record]", _NoPool())
    adapter = PostgresStateAdapter(
        pool,
        schema=options.get("schema", DEFAULT_SCHEMA),
        table_prefix=options.get("table_prefix", ""),
    )
    # What bind_notify compares a notifier's DSN with, as for an adapter that connected.
    adapter._dsn = dsn
    return adapter
