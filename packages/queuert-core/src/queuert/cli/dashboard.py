"""``queuert dashboard``: the web dashboard over the application's store, served
with uvicorn.

The dashboard is a distribution of its own (``queuert-dashboard``, with its
``serve`` extra for uvicorn). Core does not depend on it: it is imported only when
this command runs, and its absence is one line on stderr and exit status 2.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any, NoReturn

import click

from queuert.cli.loading import load
from queuert.errors import QueuertError

EXIT_ERROR = 2
INSTALL = "pip install 'queuert-dashboard[serve]'"


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.command(
    help="""Serve the web dashboard over the store until SIGTERM or SIGINT.

With --app, the dashboard also knows the application's chains and schedules;
with a state URL alone it shows what the store holds. Actions (retry, cancel,
delete) are allowed to HTTP basic credentials equal to QUEUERT_DASHBOARD_USER
and QUEUERT_DASHBOARD_PASSWORD when both are set; otherwise it is read-only.
Needs the queuert-dashboard distribution with its serve extra.

\b
Example:
  queuert dashboard --state sqlite:///jobs.db --port 8000
"""
)
@click.option(
    "--state", "state_url", help="State adapter URL (or give --state before the command)."
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.pass_context
def dashboard(ctx: click.Context, state_url: str | None, host: str, port: int) -> None:
    try:
        # Imported here, not at module import: the dashboard is optional.
        import uvicorn  # noqa: F401  (the serve extra, needed before anything opens)

        from queuert_dashboard.serve import serve_app
    except ImportError as exc:
        missing = (exc.name or "a module").split(".")[0]
        _fail(
            f"the dashboard command needs queuert-dashboard with its serve extra "
            f"({missing} is not installed): {INSTALL}"
        )
    options: Any = ctx.obj

    async def main() -> None:
        app_spec = None if state_url else options.app
        target = await load(app_spec, state_url or options.state, options.notify)
        try:
            await serve_app(target.app, host=host, port=port)
        finally:
            await target.app.close()

    try:
        asyncio.run(main())
    except QueuertError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        sys.exit(130)
