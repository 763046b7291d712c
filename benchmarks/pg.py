"""The PostgreSQL server the benchmarks run on, and a fresh database per run."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The server's URL: ``QUEUERT_TEST_POSTGRES_URL`` or the local default."""
    return os.environ.get("QUEUERT_TEST_POSTGRES_URL", DEFAULT_URL)


def database_url(url: str, database: str) -> str:
    """``url`` pointing at another database of the same server."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def reachable(url: str) -> str | None:
    """``None`` when the server answers, else why not (one line)."""
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {url} is unreachable: {exc}"
    await conn.close()
    return None


async def server_settings(url: str) -> dict[str, Any]:
    """Version and the durability settings a reader of the results needs."""
    conn = await asyncpg.connect(url)
    try:
        settings: dict[str, Any] = {"version": await conn.fetchval("SHOW server_version")}
        for name in ("synchronous_commit", "fsync", "full_page_writes", "shared_buffers"):
            settings[name] = await conn.fetchval(f"SHOW {name}")
        return settings
    finally:
        await conn.close()


@asynccontextmanager
async def fresh_database(prefix: str = "queuert_bench") -> AsyncIterator[str]:
    """Create an empty database on the server, yield its URL, drop it afterwards."""
    base = server_url()
    name = f"{prefix}_{os.getpid()}_{int(time.time())}"
    conn = await asyncpg.connect(base)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield database_url(base, name)
    finally:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def committed_transactions(url: str) -> int:
    """``xact_commit`` of the URL's database (the server publishes it with a delay of
    up to a second per backend; a backend that exits publishes at once)."""
    conn = await asyncpg.connect(url)
    try:
        value = await conn.fetchval(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        )
        return int(value)
    finally:
        await conn.close()
