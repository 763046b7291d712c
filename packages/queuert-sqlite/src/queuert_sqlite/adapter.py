"""The SQLite state adapter: one class gathering the operations of the modules
named ``*_ops`` (jobs, reads, blockers, deduplication and schedules, limits,
control, schema), each on the shared :class:`~queuert_sqlite.base.SqliteBase`."""

from __future__ import annotations

from queuert_sqlite.control_ops import ControlOps
from queuert_sqlite.job_ops import JobOps
from queuert_sqlite.limit_ops import LimitOps
from queuert_sqlite.read_ops import ReadOps
from queuert_sqlite.schema_ops import SchemaOps
from queuert_sqlite.start_ops import StartOps


class SqliteStateAdapter(ControlOps, StartOps, LimitOps, ReadOps, JobOps, SchemaOps):
    """Jobs and chains in one SQLite database file.

    **Transactions.** The transaction object ``tx`` is an :class:`aiosqlite.Connection`
    inside a transaction its owner began. :meth:`transaction` gives one on the
    adapter's own connection; :meth:`connect` opens a connection configured like
    the adapter's (autocommit mode, WAL, busy timeout, foreign keys) for an
    application that keeps its own tables in the same file, and
    ``transaction(connection=...)`` runs a transaction on it. Operations given a
    ``tx`` run inside it and neither commit nor roll it back (a ``tx`` in autocommit
    mode gets a savepoint around operations of several statements); with
    ``tx=None`` they commit before returning. The public calls of
    :class:`~queuert.Queuert` accept only a ``tx`` inside a transaction
    (:meth:`check_transaction`).

    **Concurrency.** SQLite has one writer at a time. Write transactions this
    adapter begins use ``BEGIN IMMEDIATE`` and so hold the database write lock from
    the start to the commit; within one process they take turns, and across
    processes sharing the file each waits up to the busy timeout (default 5 s)
    before raising :class:`~queuert.errors.TransientStateError`. Reads with
    ``tx=None`` never wait for the writer (WAL) and see only committed data.
    Because writes lock the whole database, :meth:`lock_job` blocks every other
    writer, not only those of the job, until ``tx`` ends. An operation with
    ``tx=None`` that writes, started while a transaction of this adapter is open,
    waits for that transaction to end; started by the task that holds the
    transaction, it raises :class:`~queuert.errors.AdapterError` instead of waiting
    for itself.

    The adapter's own statements take microseconds, so it runs them on the event
    loop's thread instead of paying a thread hop per statement; it never lets
    SQLite block there, and waits for locks with ``asyncio.sleep``. Statements the
    application sends through the connection run on aiosqlite's thread as usual.

    **Clock.** SQLite has no server clock: the clock of the process running the
    adapter is the one clock every timestamp and comparison uses, stored as integer
    microseconds since the epoch (UTC). Processes sharing a database file must
    therefore share a clock, which they do on one machine.

    **In memory.** ``path=":memory:"`` keeps the database on one connection that
    every operation, reads included, takes in turn; it lives until :meth:`close`
    and cannot be shared with other processes or with :meth:`connect`.

    **Schema.** Nothing is created implicitly: call :meth:`migrate` once per
    database. Operations on a database that was not migrated raise
    :class:`~queuert.errors.SchemaNotMigratedError`.
    """

    @classmethod
    async def from_url(cls, url: str) -> SqliteStateAdapter:
        """The adapter for a ``sqlite:///relative.db``, ``sqlite:////absolute.db`` or
        ``sqlite://:memory:`` URL; see :func:`queuert_sqlite.from_url`."""
        from queuert_sqlite.urls import from_url

        return await from_url(url)
