"""The transaction type of the PostgreSQL state adapter, and the connections of the
pools it creates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

PostgresTx: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""The caller's transaction: an asyncpg connection (plain, or acquired from a pool)
inside ``conn.transaction()``."""


if TYPE_CHECKING:
    _Connection = asyncpg.Connection[asyncpg.Record]
else:  # not subscriptable at run time
    _Connection = asyncpg.Connection


class LendingConnection(_Connection):
    """The connection class of the pools :meth:`PostgresStateAdapter.connect` creates.

    A connection comes back to the pool reset (asyncpg's reset query: ``RESET ALL``,
    ``UNLISTEN *``, advisory locks released, cursors closed), unless the adapter
    marked it as having run only statements of its own, which leave no session
    state behind; so a connection the application acquired from the pool, or got
    from the adapter's ``transaction()``, never passes its ``SET``, ``LISTEN`` or
    advisory locks on. The reset runs in the pool's ``reset`` hook
    (:func:`reset_unless_clean`).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clean = False

    def mark_clean(self) -> None:
        """Only the adapter's own statements ran since this connection was acquired:
        its next release needs no reset."""
        self._clean = True

    async def reset_unless_clean(self) -> None:
        """asyncpg's reset query, unless :meth:`mark_clean` was called since the last
        release."""
        clean, self._clean = self._clean, False
        if not clean:
            query = self.get_reset_query()
            if query:
                await self.execute(query)


async def reset_on_release(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The ``reset`` hook of the pools the adapter creates (asyncpg rolls back an open
    transaction before calling it)."""
    if isinstance(conn, LendingConnection):
        await conn.reset_unless_clean()
        return
    query = conn.get_reset_query()
    if query:
        await conn.execute(query)


def mark_clean(conn: PostgresTx) -> None:
    """Mark ``conn`` (through a pool's proxy) as used by the adapter's own statements
    only; a connection of another class is left to its pool's reset."""
    mark = getattr(conn, "mark_clean", None)
    if mark is not None:
        mark()
