"""The transaction type of the PostgreSQL state adapter."""

from __future__ import annotations

from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

PostgresTx: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
"""The caller's transaction: an asyncpg connection (plain, or acquired from a pool)
inside ``conn.transaction()``."""
