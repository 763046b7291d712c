"""``python manage.py queuert ...``: the ``queuert`` command on the project's
database (see ``queuert --help``): ``worker``, ``migrate``, ``chains``, ``chain``,
``jobs``, ``explain``, ``stats``, ``cancel``, ``retry``, ... The store's URL comes
from ``DATABASES[QUEUERT["DATABASE"]]`` and ``QUEUERT["NOTIFY"]``; ``worker`` runs
``QUEUERT["WORKER"]``.

Examples::

    python manage.py queuert worker --concurrency 20
    python manage.py queuert chains --status failed --newest
    python manage.py queuert --json stats
"""

from __future__ import annotations

import argparse
from typing import Any

import click
from django.core.management.base import BaseCommand, CommandError, CommandParser

from queuert.cli.commands import cli
from queuert.errors import QueuertError
from queuert_django import database
from queuert_django.conf import config

# Options of Django's own that manage.py has already applied.
_DJANGO_OPTIONS = ("--settings", "--pythonpath")


def queuert_args(args: list[str]) -> list[str]:
    """The arguments of the ``queuert`` command for ``manage.py queuert args``: the
    store's and notifier's URLs, and ``--app`` for ``worker`` (unless given)."""
    cfg = config()
    front = ["--state", database.state_url(cfg=cfg)]
    notify = database.notify_url(cfg)
    if notify is not None:
        front += ["--notify", notify]
    command = next((arg for arg in args if not arg.startswith("-")), None)
    if command == "worker" and not any(a == "--app" or a.startswith("--app=") for a in args):
        front += ["--app", cfg.worker]
    return front + args


def _without_django_options(argv: list[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f"{name}=" for name in _DJANGO_OPTIONS)):
            kept.append(arg)
    return kept


class Command(BaseCommand):
    help = "Run queuert workers, migrate, and inspect and operate chains (see: queuert --help)."
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON instead of tables.")
        parser.add_argument("args", nargs=argparse.REMAINDER, help="queuert's arguments")

    def run_from_argv(self, argv: list[str]) -> None:
        # The arguments go to queuert's own parser as they are (exit status 2 and one
        # line on stderr for a queuert error, as the queuert command has).
        try:
            args = queuert_args(_without_django_options(argv[2:]))
        except QueuertError as exc:
            raise SystemExit(f"error: {exc}") from None
        cli.main(args=args, prog_name=f"{argv[0]} queuert")

    def handle(self, *args: str, **options: Any) -> None:
        # call_command("queuert", "stats", json=True): queuert's parser without its
        # exits, which become CommandError.
        given = (["--json"] if options.get("json") else []) + list(args)
        try:
            cli.main(args=queuert_args(given), prog_name="queuert", standalone_mode=False)
        except QueuertError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except click.ClickException as exc:
            raise CommandError(exc.format_message(), returncode=exc.exit_code) from exc
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise CommandError(
                    f"queuert exited with status {exc.code}",
                    returncode=exc.code if isinstance(exc.code, int) else 2,
                ) from exc
