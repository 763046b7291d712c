"""The base the parts of :class:`~queuert_postgres.PostgresStateAdapter` share.

The adapter is assembled in :mod:`queuert_postgres.state` from groups of port
operations (:mod:`~queuert_postgres.job_ops`, :mod:`~queuert_postgres.reads`,
:mod:`~queuert_postgres.workflow_ops`, :mod:`~queuert_postgres.admin_ops`); each
group subclasses :class:`PostgresAdapterBase`, which declares the state and the
connection plumbing they use. The plumbing itself lives in the assembled class.
"""

from __future__ import annotations

from abc import abstractmethod
from contextlib import AbstractAsyncContextManager
from typing import Any, NoReturn

import asyncpg

from queuert.batching import Batcher
from queuert.ports.state import StateAdapter
from queuert.records import Lease, NewJob
from queuert_postgres.after_commit import AfterCommitSignals
from queuert_postgres.blockers import BlockerStatements
from queuert_postgres.connections import PostgresTx
from queuert_postgres.dedup import DedupStatements
from queuert_postgres.names import Names
from queuert_postgres.statements import Statements


class PostgresAdapterBase(StateAdapter[PostgresTx]):
    """What the groups of operations of the PostgreSQL state adapter need of it."""

    _names: Names
    _sql: Statements
    # Signal-free, for the last write of a leased transaction (see after_commit).
    _quiet_sql: Statements
    _after_commit: AfterCommitSignals
    _blocker_sql: BlockerStatements
    _dedup_sql: DedupStatements
    _continuations: Batcher[tuple[Lease, NewJob], asyncpg.Record]
    _completions: Batcher[tuple[Lease, str], asyncpg.Record]

    @abstractmethod
    def _raise(self, exc: BaseException, conn: object = None) -> NoReturn:
        """Raise the queuert error for the driver error ``exc``, chained to it."""

    @abstractmethod
    async def _fetch(self, tx: PostgresTx | None, sql: str, *args: Any) -> list[asyncpg.Record]:
        """The rows of one statement, in ``tx`` or on a pooled connection of its own;
        driver errors are translated."""

    @abstractmethod
    async def _fetchrow(self, tx: PostgresTx | None, sql: str, *args: Any) -> asyncpg.Record | None:
        """The first row of one statement, as :meth:`_fetch`."""

    @abstractmethod
    def _check_not_holding(self) -> None:
        """Raise :class:`~queuert.errors.AdapterError` when the calling task holds a
        transaction of this adapter and the pool has no free connection."""

    @abstractmethod
    def _transaction(
        self, leased: tuple[Lease, bool] | None
    ) -> AbstractAsyncContextManager[PostgresTx]:
        """A transaction on a connection of the pool; ``leased`` (a lease and whether to
        lock its job) is checked by its first statement."""

    @abstractmethod
    def _block(self, conn: PostgresTx) -> AbstractAsyncContextManager[PostgresTx]:
        """A transaction on ``conn``, or a savepoint when ``conn`` is already in one."""
