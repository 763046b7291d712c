"""Where the application's database is: one URL for SQLAlchemy and queuert."""

from __future__ import annotations

import os
from urllib.parse import urlencode, urlsplit

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import queuert
from examples.fastapi_app.chains import CHAINS

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///fastapi_app.db"


def database_url() -> str:
    return os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)


def queuert_url(url: str, **options: str) -> str:
    """The queuert adapter URL of an SQLAlchemy URL: the same database without the
    ``+driver`` part (``postgresql+asyncpg://h/db`` -> ``postgresql://h/db``), with
    ``options`` (``schema=...``) in its query."""
    dialect, rest = url.split(":", 1)
    extra = urlencode(options)
    if extra:
        rest += ("&" if urlsplit(url).query else "?") + extra
    return f"{dialect.split('+', 1)[0]}:{rest}"


# --8<-- [start:connect]
async def connect(
    url: str, *, schema: str | None = None
) -> tuple[AsyncEngine, queuert.Queuert[object]]:
    """The SQLAlchemy engine and the queuert application of one database (on
    PostgreSQL, with ``schema`` for both the application's tables and queuert's).
    On PostgreSQL the adapter's writes carry their own NOTIFY; on SQLite workers
    poll."""
    if schema is None:
        engine = create_async_engine(url)
        state = queuert_url(url)
    else:
        engine = create_async_engine(
            url, execution_options={"schema_translate_map": {None: schema}}
        )
        state = queuert_url(url, schema=schema)
    notify = state if state.startswith("postgresql") else "none"
    app = await queuert.Queuert.from_url(state=state, notify=notify, chains=CHAINS)
    return engine, app


# --8<-- [end:connect]
