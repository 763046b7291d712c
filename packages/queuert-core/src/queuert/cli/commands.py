"""The commands of ``queuert``. Each finds the application (``--app`` or URLs),
runs one operation of the client API and prints the result; any queuert error
is printed as one line and exits with status 2."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import click

from queuert.cli import render
from queuert.cli.dashboard import dashboard
from queuert.cli.loading import Target, load
from queuert.cli.loops import run_on
from queuert.errors import ConfigurationError, QueuertError, ValidationError
from queuert.worker import Worker, default_prefetch, handlers_of

EXIT_ERROR = 2

_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30s``, ``15m``, ``12h``, ``7d`` or ``2w``."""
    match = _DURATION.match(text)
    if match is None:
        raise ValidationError(f"a duration looks like 30s, 15m, 12h, 7d or 2w; got {text[:40]!r}")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass
class Options:
    app: str | None
    state: str | None
    notify: str | None
    json: bool


def _fail(message: str) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(EXIT_ERROR)


def run(
    ctx: click.Context,
    body: Callable[[Target], Awaitable[Any]],
    *,
    check: bool = True,
    uvloop: bool = False,
) -> Any:
    """Load the target, run ``body`` on it (on uvloop with ``uvloop``), close it; a
    queuert error (or a bad ``--app``) becomes one line on stderr and exit status 2."""
    options: Options = ctx.obj

    async def main() -> Any:
        target = await load(options.app, options.state, options.notify)
        try:
            if check:
                await target.app.state.check_schema()
            return await body(target)
        finally:
            await target.app.close()

    try:
        return run_on(main, uvloop=uvloop)
    except QueuertError as exc:
        _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except KeyboardInterrupt:
        sys.exit(130)


def _show(ctx: click.Context, value: Any, pretty: Callable[[], None]) -> None:
    if ctx.obj.json:
        render.print_json(value)
    else:
        pretty()


@click.group(
    help="""Run queuert workers, migrate the schema, and inspect and operate chains.

\b
Find the application with --app (a module attribute holding the Queuert
application or its Worker, or a function returning one), or give the store's
URL with --state for the commands that need no handlers.

\b
Examples:
  queuert --app myproject.jobs:app worker --concurrency 20
  queuert --state sqlite:///jobs.db migrate
  queuert --state postgresql://localhost/app chains --status failed --newest
  queuert --state sqlite:///jobs.db --json stats
""",
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option("--app", envvar="QUEUERT_APP", help="module:attribute of the application.")
@click.option("--state", envvar="QUEUERT_STATE_URL", help="State adapter URL (without --app).")
@click.option("--notify", envvar="QUEUERT_NOTIFY_URL", help="Notify adapter URL (optional).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.pass_context
def cli(
    ctx: click.Context, app: str | None, state: str | None, notify: str | None, as_json: bool
) -> None:
    ctx.obj = Options(app=app, state=state, notify=notify, json=as_json)


# -- worker -----------------------------------------------------------------------------


@cli.command(
    help="""Run a worker with the handlers registered on the application.

SIGTERM or SIGINT stops it gracefully: it takes no new job and lets the
running ones finish (up to --shutdown-timeout); a second signal exits at once
(the leases of jobs still running expire and other workers take them).

\b
Example:
  queuert --app myproject.jobs:app worker --concurrency 20 --queue emails
"""
)
@click.option("--concurrency", type=int, help="Jobs run at once (default: the worker's).")
@click.option(
    "--prefetch",
    type=int,
    help="Jobs leased ahead of free slots in the worker's local queue; 0 disables it "
    "(default: the worker's).",
)
@click.option("--queue", "queues", multiple=True, help="Only these queues (repeatable).")
@click.option("--lease-ms", type=int, help="Lease of each job (default: the worker's).")
@click.option("--retention", help="Purge chains ended longer ago than this, e.g. 7d.")
@click.option("--shutdown-timeout", type=float, default=30.0, show_default=True)
@click.option(
    "--uvloop",
    "use_uvloop",
    is_flag=True,
    help="Run on uvloop (the uvloop extra): less CPU per job.",
)
@click.pass_context
def worker(
    ctx: click.Context,
    concurrency: int | None,
    prefetch: int | None,
    queues: tuple[str, ...],
    lease_ms: int | None,
    retention: str | None,
    shutdown_timeout: float,
    use_uvloop: bool,
) -> None:
    if not ctx.obj.app:
        _fail("the worker needs the application's handlers: give --app module:attribute")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def body(target: Target) -> None:
        app = target.app
        if target.worker is None:
            raise ConfigurationError(
                f"--app {ctx.obj.app!r} has no Worker with handlers: name the Worker, or "
                "keep one bound to the application in the same module"
            )
        source = target.worker
        chosen = [app.queue_def(name) for name in queues] or None
        # The worker's own prefetch, unless it is the default and --concurrency
        # changes it.
        kept = source.prefetch != default_prefetch(source.concurrency)
        running = app.worker(
            concurrency=concurrency or source.concurrency,
            prefetch=source.prefetch if prefetch is None and kept else prefetch,
            queues=chosen,
            lease_ms=lease_ms or source.lease_ms,
            poll_interval=source.poll_interval,
            shutdown_timeout=shutdown_timeout,
            retention=None if retention is None else parse_duration(retention),
        )
        for name, handler in handlers_of(source).items():
            running.handler(app.queues[name])(handler)
        await _serve(running, shutdown_timeout)

    run(ctx, body, uvloop=use_uvloop)


async def _serve(running: Worker[Any], shutdown_timeout: float) -> None:
    loop = asyncio.get_running_loop()
    signals = 0
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        nonlocal signals
        signals += 1
        if signals == 1:
            logging.getLogger("queuert.worker").info("stopping; a second signal exits at once")
            stopping.append(asyncio.ensure_future(running.stop(timeout=shutdown_timeout)))
        else:
            os._exit(EXIT_ERROR)

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    try:
        await running.run(install_signal_handlers=False)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


# -- schema ------------------------------------------------------------------------------


@cli.command(
    help="""Create or upgrade queuert's schema (idempotent).

With --sql, print the statements instead of running them, for teams that apply
schema changes with Alembic, Django migrations or a DBA.

\b
Example:
  queuert --state postgresql://localhost/app migrate --sql > queuert.sql
"""
)
@click.option("--sql", is_flag=True, help="Print the DDL instead of applying it.")
@click.pass_context
def migrate(ctx: click.Context, sql: bool) -> None:
    async def body(target: Target) -> Any:
        if sql:
            return await target.app.state.schema_sql()
        await target.app.migrate()
        return None

    statements = run(ctx, body, check=False)
    if sql:
        if ctx.obj.json:
            render.print_json(statements)
        else:
            for statement in statements:
                click.echo(statement.rstrip(";") + ";\n")
    elif ctx.obj.json:
        render.print_json({"migrated": True})
    else:
        click.echo("schema is up to date")


# -- reading -------------------------------------------------------------------------------


@cli.command(
    help="""List chains, oldest first (--newest for newest first).

\b
Example:
  queuert --state sqlite:///jobs.db chains --status failed --newest --limit 20
"""
)
@click.option("--status", "statuses", multiple=True, help="Only chains with this status.")
@click.option("--chain", "--queue", "chain_name", help="Only chains of this definition.")
@click.option("--newest", is_flag=True, help="Newest first.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--after", help="Cursor printed at the end of the previous page.")
@click.pass_context
def chains(
    ctx: click.Context,
    statuses: tuple[str, ...],
    chain_name: str | None,
    newest: bool,
    limit: int,
    after: str | None,
) -> None:
    async def body(target: Target) -> Any:
        return await target.app.list_chains(
            status=statuses or None,
            chain=chain_name,
            order="newest" if newest else "oldest",
            limit=limit,
            after=after,
        )

    page = run(ctx, body)
    _show(ctx, page, lambda: render.chains_table(page.items, page.next_cursor))


@cli.command(
    help="""Show one chain with each of its jobs: attempts, errors and tracebacks.

\b
Example:
  queuert --state sqlite:///jobs.db chain 01a2...
"""
)
@click.argument("chain_id")
@click.pass_context
def chain(ctx: click.Context, chain_id: str) -> None:
    async def body(target: Target) -> Any:
        record = await target.app.get_chain(chain_id)
        if record is None:
            raise QueuertError(f"no chain has id {chain_id!r}")
        jobs = await target.app.list_jobs(chain_id=chain_id, limit=10_000)
        return record, jobs.items

    record, jobs = run(ctx, body)
    _show(ctx, {"chain": record, "jobs": jobs}, lambda: render.chain_detail(record, jobs))


@cli.command(
    help="""List jobs, oldest first (--newest for newest first).

\b
Example:
  queuert --state sqlite:///jobs.db jobs --status running --queue emails
"""
)
@click.option("--status", "statuses", multiple=True, help="Only jobs with this status.")
@click.option("--queue", "queues", multiple=True, help="Only jobs of this queue.")
@click.option("--chain-id", help="Only the jobs of this chain.")
@click.option("--newest", is_flag=True, help="Newest first.")
@click.option("--limit", type=int, default=50, show_default=True)
@click.option("--after", help="Cursor printed at the end of the previous page.")
@click.pass_context
def jobs(
    ctx: click.Context,
    statuses: tuple[str, ...],
    queues: tuple[str, ...],
    chain_id: str | None,
    newest: bool,
    limit: int,
    after: str | None,
) -> None:
    async def body(target: Target) -> Any:
        return await target.app.list_jobs(
            status=statuses or None,
            queue=queues or None,
            chain_id=chain_id,
            order="newest" if newest else "oldest",
            limit=limit,
            after=after,
        )

    page = run(ctx, body)
    _show(ctx, page, lambda: render.jobs_table(page.items, page.next_cursor))


@cli.command(
    help="""Explain why a job (or a chain's current job) is not running, or how it ended.

\b
Example:
  queuert --state sqlite:///jobs.db explain 01a2...
"""
)
@click.argument("job_or_chain_id")
@click.pass_context
def explain(ctx: click.Context, job_or_chain_id: str) -> None:
    async def body(target: Target) -> Any:
        return await target.app.explain(job_or_chain_id)

    why = run(ctx, body)
    _show(ctx, why, lambda: render.explanation(why))


@cli.command(
    help="""List the workers seen recently and the queues they serve.

\b
Example:
  queuert --state sqlite:///jobs.db workers
"""
)
@click.pass_context
def workers(ctx: click.Context) -> None:
    async def body(target: Target) -> Any:
        return await target.app.list_workers()

    found = run(ctx, body)
    _show(ctx, found, lambda: render.workers_table(found))


@cli.command(
    help="""List the application's schedules with their next and last slots and the
chain the last slot started. Schedules are declared in code: give --app.

\b
Example:
  queuert --app myproject.jobs:app schedules
"""
)
@click.pass_context
def schedules(ctx: click.Context) -> None:
    if ctx.obj.app is None:
        _fail("schedules are declared by the application: give --app (or QUEUERT_APP)")

    async def body(target: Target) -> Any:
        return await target.app.list_schedules()

    found = run(ctx, body)
    if ctx.obj.json:
        render.print_json(render.schedules_data(found))
    else:
        render.schedules_table(found)


@cli.command(
    help="""Count jobs by queue and status, with the age of each queue's oldest pending job.

\b
Example:
  queuert --state sqlite:///jobs.db --json stats
"""
)
@click.pass_context
def stats(ctx: click.Context) -> None:
    async def body(target: Target) -> Any:
        return await target.app.stats()

    counts = run(ctx, body)
    _show(ctx, counts, lambda: render.stats_table(counts))


# -- operating -------------------------------------------------------------------------------


@cli.command(
    help="""Retry a failed or cancelled chain where it ended, with a fresh attempt budget.

\b
Example:
  queuert --state sqlite:///jobs.db retry 01a2...
"""
)
@click.argument("chain_id")
@click.option("--job", "is_job", is_flag=True, help="The id is a job's, not a chain's.")
@click.pass_context
def retry(ctx: click.Context, chain_id: str, is_job: bool) -> None:
    async def body(target: Target) -> Any:
        if is_job:
            return await target.app.retry_job(chain_id)
        return await target.app.retry_chain(chain_id)

    record = run(ctx, body)
    _show(ctx, record, lambda: click.echo(f"{record.id} is {record.status.value} again"))


@cli.command(
    help="""Cancel a chain, running or not (its worker's lease is revoked).

\b
Example:
  queuert --state sqlite:///jobs.db cancel 01a2...
"""
)
@click.argument("chain_id")
@click.pass_context
def cancel(ctx: click.Context, chain_id: str) -> None:
    async def body(target: Target) -> Any:
        async with target.app.with_notify():
            return await target.app.cancel_chain(chain_id)

    record = run(ctx, body)
    _show(ctx, record, lambda: click.echo(f"chain {record.id} is {record.status.value}"))


@cli.command(
    help="""Complete a job from outside a worker: end its chain with --output, or continue
it with --continue-with QUEUE --input JSON. Needs --app (the chains' types).

\b
Example:
  queuert --app myproject.jobs:app complete 01a2... --output '{"approved": true}'
"""
)
@click.argument("job_id")
@click.option("--output", "output_json", help="The chain's output, as JSON.")
@click.option("--continue-with", "queue_name", help="The queue of the next job.")
@click.option("--input", "input_json", help="The next job's input, as JSON.")
@click.pass_context
def complete(
    ctx: click.Context,
    job_id: str,
    output_json: str | None,
    queue_name: str | None,
    input_json: str | None,
) -> None:
    if (output_json is None) == (queue_name is None):
        _fail("give either --output JSON or --continue-with QUEUE --input JSON")
    for text in (output_json, input_json):
        if text is not None:
            try:
                json.loads(text)
            except ValueError as exc:
                _fail(f"not JSON: {text[:80]!r} ({exc})")

    async def body(target: Target) -> Any:
        app = target.app
        job = await app.get_job(job_id)
        if job is None:
            raise QueuertError(f"no job has id {job_id!r}")
        if queue_name is not None:
            if input_json is None:
                raise ValidationError("--continue-with needs --input JSON")
            queue = app.queue_def(queue_name)
            value = queue.input_codec.decode(input_json)
            async with app.with_notify():
                return await app.complete_job(None, job_id, continue_with=(queue, value))
        chain_def = app.chains.get(job.chain_name)
        if chain_def is None:
            raise ValidationError(
                f"chain {job.chain_name!r} is not registered with the application: "
                "give --app so that its output type is known"
            )
        assert output_json is not None
        output = chain_def.output_codec.decode(output_json)
        async with app.with_notify():
            return await app.complete_job(None, job_id, output=output)

    record = run(ctx, body)
    _show(ctx, record, lambda: click.echo(f"job {record.id} is {record.status.value}"))


@cli.command(
    help="""Delete chains that ended longer ago than --older-than, in batches.

\b
Example:
  queuert --state sqlite:///jobs.db purge --older-than 7d --status completed --status cancelled
"""
)
@click.option("--older-than", required=True, help="e.g. 30s, 15m, 12h, 7d, 2w.")
@click.option(
    "--status", "statuses", multiple=True, help="Ended statuses to purge (default: completed)."
)
@click.option("--batch-size", type=int, default=1000, show_default=True)
@click.pass_context
def purge(ctx: click.Context, older_than: str, statuses: tuple[str, ...], batch_size: int) -> None:
    try:
        age = parse_duration(older_than)
    except ValidationError as exc:
        _fail(str(exc))

    async def body(target: Target) -> Any:
        return await target.app.purge(
            ended_before=datetime.now(UTC) - age,
            statuses=statuses or ("completed",),
            batch_size=batch_size,
        )

    deleted = run(ctx, body)
    _show(ctx, {"deleted": deleted}, lambda: click.echo(f"deleted {deleted} chains"))


# -- the dashboard (its own module: it imports the optional dashboard lazily) ----------

cli.add_command(dashboard)
