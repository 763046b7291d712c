"""The transaction type of the PostgreSQL state adapter, and the connections of the
pools it creates."""

from __future__ import annotations

from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from queuert.records import Lease

PostgresTx: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""The caller's transaction: an asyncpg connection (plain, or acquired from a pool)
inside ``conn.transaction()``."""


if TYPE_CHECKING:
    _Connection = asyncpg.Connection[asyncpg.Record]
else:  # not subscriptable at run time
    _Connection = asyncpg.Connection


class LendingConnection(_Connection):
    """The connection class of the pools :meth:`PostgresStateAdapter.connect` creates.

    A connection lent to the caller's code (inside a transaction of the adapter's)
    may come back holding session state: ``SET``, ``LISTEN``, advisory locks,
    open cursors. It needs asyncpg's reset before the next user; the adapter's own
    statements leave nothing behind and need none. Instead of a round trip of its
    own on release, the reset travels in the message of the transaction's
    ``COMMIT``; likewise the lease check of a leased transaction travels with its
    ``BEGIN``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.needs_reset = False
        self._reset_with_commit = False
        self._with_begin: str | None = None
        self.begin_status: str | None = None
        self._with_commit: str | None = None
        self.locked_lease: Lease | None = None

    def begin_with(self, statement: str) -> None:
        """Send ``statement`` in the message of the next ``BEGIN``; its command tag is
        then in :attr:`begin_status`."""
        self._with_begin = statement
        self.begin_status = None

    def commit_with(self, statement: str) -> None:
        """Send ``statement`` in the message of the next ``COMMIT``, before it; a
        ``ROLLBACK`` discards it. When it fails, the transaction rolls back and the
        ``COMMIT`` raises its error."""
        self._with_commit = statement

    @property
    def lending(self) -> LendingConnection:
        """This connection (reached through a pool's proxy)."""
        return self

    def lend(self) -> None:
        """Mark the connection as handed to the caller's code: the next ``COMMIT``
        carries the reset, or the pool runs it on release."""
        self.needs_reset = True
        self._reset_with_commit = True

    async def execute(self, query: str, *args: object, timeout: float | None = None) -> str:
        statement = self._with_begin
        if statement is not None and not args and query == "BEGIN;":
            # asyncpg's Transaction.start() sends exactly this (default isolation).
            self._with_begin = None
            self.begin_status = await super().execute(f"BEGIN;\n{statement}", timeout=timeout)
            return self.begin_status
        if not args and query == "COMMIT;":
            # asyncpg's Transaction.commit() sends exactly this.
            return await self._commit(timeout)
        if not args and query == "ROLLBACK;":
            self._with_commit = None
            self.locked_lease = None
        return await super().execute(query, *args, timeout=timeout)

    async def _commit(self, timeout: float | None) -> str:
        before, self._with_commit = self._with_commit, None
        self.locked_lease = None
        with_reset, self._reset_with_commit = self._reset_with_commit, False
        if before is None and not with_reset:
            return await super().execute("COMMIT;", timeout=timeout)
        # The statements after COMMIT run only once it succeeded; after a failed
        # COMMIT the pool resets.
        message = "COMMIT;"
        if before is not None:
            message = f"{before};\n{message}"
        if with_reset:
            message = f"{message}\n{self.get_reset_query()}"
        try:
            status = await super().execute(message, timeout=timeout)
        except BaseException:
            if before is not None and not self.is_closed() and self.is_in_transaction():
                # The write before COMMIT failed and left the transaction aborted, not
                # ended: end it here rather than have the pool warn about it.
                with suppress(Exception):
                    await super().execute("ROLLBACK;")
            raise
        if with_reset:
            self.needs_reset = False
        return status

    async def reset_if_lent(self) -> None:
        """The pool's reset: asyncpg's own, only when the connection still needs it."""
        self._reset_with_commit = False
        self._with_begin = None
        self._with_commit = None
        self.locked_lease = None
        if self.needs_reset:
            self.needs_reset = False
            reset = self.get_reset_query()
            if reset:
                await super().execute(reset)
