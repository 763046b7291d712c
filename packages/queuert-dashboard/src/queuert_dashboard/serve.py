"""Serving the dashboard on its own, over a store given by URL::

    queuert dashboard --state sqlite:///jobs.db [--host 127.0.0.1] [--port 8000]
    python -m queuert_dashboard --state sqlite:///jobs.db [--host 127.0.0.1] [--port 8000]

The store's URL may come from ``QUEUERT_STATE_URL`` instead. With
``QUEUERT_DASHBOARD_USER`` and ``QUEUERT_DASHBOARD_PASSWORD`` set, actions are
allowed to requests with those HTTP basic credentials; otherwise it is read-only.
Needs uvicorn (extra ``serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from queuert import ConfigurationError, Queuert, QueuertError
from queuert_dashboard.app import create_app
from queuert_dashboard.auth import PASSWORD_VARIABLE, USER_VARIABLE, basic_auth_from_env


async def serve_app(app: Queuert[Any], *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the dashboard of ``app`` with uvicorn until interrupted (SIGINT or
    SIGTERM), after checking that its store is migrated; ``app`` stays open.
    Raises ConfigurationError when uvicorn is not installed or only one of the
    credential variables is set, and SchemaNotMigratedError when the store is not
    migrated."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ConfigurationError(
            "serving the dashboard needs uvicorn: pip install 'queuert-dashboard[serve]'"
        ) from exc
    await app.state.check_schema()
    auth = (
        basic_auth_from_env()
        if os.environ.get(USER_VARIABLE) or os.environ.get(PASSWORD_VARIABLE)
        else None
    )
    config = uvicorn.Config(create_app(app, auth=auth), host=host, port=port)
    await uvicorn.Server(config).serve()


async def serve(*, state: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the dashboard of the store at ``state`` until interrupted. Raises
    ConfigurationError for a bad URL or when uvicorn is not installed, and
    SchemaNotMigratedError when the store is not migrated."""
    app = await Queuert.from_url(chains=[], state=state, notify="none")
    try:
        await serve_app(app, host=host, port=port)
    finally:
        await app.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m queuert_dashboard")
    parser.add_argument("--state", help="the store's URL (default: QUEUERT_STATE_URL)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(state=args.state, host=args.host, port=args.port))
    except QueuertError as exc:
        sys.exit(f"error: {exc}")
