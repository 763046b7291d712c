"""Small builders shared by the SQLite tests."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from queuert.conformance import support
from queuert.records import NewJob


def new_job(queue: str = "q", **overrides: Any) -> NewJob:
    """A first job of a new chain on ``queue``; ``overrides`` replace its fields."""
    return replace(support.new_job(queue, input='{"n": 1}'), **overrides)
