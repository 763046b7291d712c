"""queuert: SQLite state adapter (aiosqlite).

``SqliteStateAdapter(path="jobs.db")`` stores jobs and chains in a SQLite
database file; the application's transaction object is an
:class:`aiosqlite.Connection`. Call :meth:`SqliteStateAdapter.migrate` once to
create the schema. ``from_url("sqlite:///jobs.db")`` builds one from a URL.
"""

from queuert_sqlite.adapter import SqliteStateAdapter
from queuert_sqlite.migrations import SCHEMA_VERSION
from queuert_sqlite.urls import from_url

__all__ = ["SCHEMA_VERSION", "SqliteStateAdapter", "from_url"]
