"""Timestamps as stored: integer microseconds since the Unix epoch, UTC.

SQLite has no server clock, so the adapter's process clock is the one clock
every comparison uses; integers keep those comparisons exact.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from queuert.errors import AdapterError, ValidationError
from queuert.validation import show

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def now_us() -> int:
    """The process clock, in microseconds since the epoch."""
    return time.time_ns() // 1000


def to_us(value: datetime, name: str) -> int:
    """Microseconds since the epoch. Raises :class:`~queuert.errors.ValidationError`
    naming ``name`` for a naive datetime, whose instant is unknown."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware, got {value!r}")
    return (value - EPOCH) // _ONE_US


def from_us(value: int) -> datetime:
    """The timezone-aware UTC datetime of a stored timestamp. Raises
    :class:`~queuert.errors.AdapterError` for one beyond what ``datetime`` holds
    (written outside queuert, or before queuert bounded leases and delays)."""
    try:
        return EPOCH + timedelta(microseconds=value)
    except (OverflowError, TypeError) as exc:
        raise AdapterError(
            f"stored timestamp {show(value)} (microseconds since the epoch) is beyond "
            "what a datetime holds"
        ) from exc


def optional_from_us(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)
