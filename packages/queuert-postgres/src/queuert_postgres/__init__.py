"""queuert: PostgreSQL state adapter (asyncpg) and LISTEN/NOTIFY notify adapter.

- :class:`PostgresStateAdapter`: jobs and chains in PostgreSQL (13 or later),
  the caller's transaction being an asyncpg connection.
- :class:`PostgresNotifyAdapter`: wake-ups over LISTEN/NOTIFY.

Both are also reachable by URL (``postgresql://`` or ``postgres://``) through
:func:`queuert.urls.state_from_url` and :func:`queuert.urls.notify_from_url`.
"""

from queuert_postgres.connections import PostgresTx
from queuert_postgres.migrations import LATEST_VERSION as SCHEMA_VERSION
from queuert_postgres.notify import PostgresNotifyAdapter
from queuert_postgres.state import PostgresStateAdapter

__all__ = ["SCHEMA_VERSION", "PostgresNotifyAdapter", "PostgresStateAdapter", "PostgresTx"]
