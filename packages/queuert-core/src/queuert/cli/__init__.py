"""The ``queuert`` command: run workers, migrate, and inspect and operate chains.

Needs the ``cli`` extra (``pip install 'queuert-core[cli]'``: click and rich).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Entry point of the ``queuert`` console script and ``python -m queuert``."""
    try:
        from queuert.cli.commands import cli
    except ImportError as exc:  # click or rich missing
        print(
            f"error: the queuert command needs the cli extra ({exc.name} is not installed): "
            "pip install 'queuert-core[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    cli(prog_name="queuert")


__all__ = ["main"]
