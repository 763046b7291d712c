"""Checks of values public entry points are given, against what every adapter can
store and read back (DESIGN section 8).

The bounds are the same on every adapter, so that an application that works on
one works on all:

- durations (leases, heartbeat intervals, delays, retry delays) are whole
  milliseconds within ``1..MAX_DURATION_MS`` (about 100 years);
- points in time (``start_at``, reschedule ``at``) lie within
  ``EARLIEST_TIME``..``LATEST_TIME`` in UTC (SQLite stores microseconds since
  the epoch and Python's ``datetime`` ends at year 9999);
- priorities and attempt counts are 32-bit signed integers (PostgreSQL
  ``integer``);
- text that is stored (ids, worker ids, names) holds no NUL and no unpaired
  surrogate (PostgreSQL and UTF-8 refuse them);
- payloads are nested at most ``MAX_PAYLOAD_DEPTH`` deep, hold only finite
  numbers and, untyped, only string keys.

Error messages quote a bad value through :func:`show`, which keeps at most
``MAX_SHOWN`` characters of it.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from queuert.errors import InputValidationError, ValidationError

MAX_DURATION_MS = 100 * 365 * 86_400_000
"""The longest lease, heartbeat interval or delay, in milliseconds (100 years of 365 days)."""

EARLIEST_TIME = datetime(1970, 1, 1, tzinfo=UTC)
"""The earliest ``start_at`` (or reschedule ``at``) every adapter stores."""

LATEST_TIME = datetime(9999, 1, 1, tzinfo=UTC)
"""Times must be before this one, so that every adapter can store them and read them
back in any time zone."""

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1

MAX_PAYLOAD_DEPTH = 100
"""How deep arrays and objects may nest in a payload (JSON parsers that read it back
stop at a depth of a few hundred)."""

MAX_TEXT_LENGTH = 1_000
"""The longest id, worker id or other stored name."""

MAX_WORKER_ID = 200
"""The longest ``worker_id``."""

MAX_SHOWN = 200
"""At most this many characters of a bad value appear in an error message."""

MIN_POLL_INTERVAL = 0.01
"""The shortest ``poll_interval`` (seconds) of :meth:`~queuert.Queuert.wait_for_chain`."""

_repr = reprlib.Repr()
_repr.maxstring = MAX_SHOWN
_repr.maxother = MAX_SHOWN
_repr.maxlong = 60
_repr.maxlevel = 4


def show(value: object, limit: int = MAX_SHOWN) -> str:
    """A ``repr`` of ``value`` of at most about ``limit`` characters, for error
    messages. Never raises (an object whose ``repr`` raises is shown by its type)."""
    try:
        text = _repr.repr(value)
    except Exception:
        text = f"<{type(value).__name__} object>"
    return clip(text, limit)


def clip(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters, marking what was left out."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int32(name: str, value: object, *, minimum: int = INT32_MIN) -> int:
    """``value`` if it is an integer within ``minimum..INT32_MAX``."""
    if not _is_int(value) or not minimum <= value <= INT32_MAX:  # type: ignore[operator]
        raise ValidationError(
            f"{name} must be an integer within {minimum}..{INT32_MAX}, got {show(value)}"
        )
    return value  # type: ignore[return-value]


def check_duration_ms(
    name: str,
    value: object,
    *,
    minimum: int = 1,
    error: type[ValidationError] = ValidationError,
) -> int:
    """``value`` if it is an integer of milliseconds within ``minimum..MAX_DURATION_MS``."""
    if not _is_int(value) or not minimum <= value <= MAX_DURATION_MS:  # type: ignore[operator]
        raise error(
            f"{name} must be an integer of milliseconds within {minimum}..{MAX_DURATION_MS}, "
            f"got {show(value)}"
        )
    return value  # type: ignore[return-value]


def delay_ms(name: str, value: object) -> int:
    """Whole milliseconds of a non-negative ``timedelta`` of at most ``MAX_DURATION_MS``."""
    if not isinstance(value, timedelta) or value < timedelta(0):
        raise ValidationError(f"{name} must be a non-negative timedelta, got {show(value)}")
    if value > timedelta(milliseconds=MAX_DURATION_MS):
        raise ValidationError(
            f"{name} must be at most {MAX_DURATION_MS} ms (about 100 years), got {show(value)}"
        )
    return value // timedelta(milliseconds=1)


def check_time(name: str, value: object) -> datetime:
    """``value`` in UTC if it is a timezone-aware datetime within
    ``EARLIEST_TIME``..``LATEST_TIME``."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationError(f"{name} must be a timezone-aware datetime, got {show(value)}")
    try:
        utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST_TIME <= utc < LATEST_TIME:
        raise ValidationError(
            f"{name} must lie from {EARLIEST_TIME.isoformat()} to before "
            f"{LATEST_TIME.isoformat()}, got {show(value)}"
        )
    return utc


def check_seconds(
    name: str, value: object, *, minimum: float = 0.0, maximum: float = MAX_DURATION_MS / 1000
) -> float:
    """``value`` as a float if it is a finite number of seconds, more than zero and
    within ``minimum..maximum``."""
    number = _finite(value)
    if number is None or number <= 0 or not minimum <= number <= maximum:
        low = f"at least {minimum}" if minimum > 0 else "more than 0"
        raise ValidationError(
            f"{name} must be a finite number of seconds, {low} and at most {maximum:g}, "
            f"got {show(value)}"
        )
    return number


def check_finite(name: str, value: object, *, minimum: float, maximum: float) -> float:
    """``value`` if it is a finite number within ``minimum..maximum``."""
    number = _finite(value)
    if number is None or not minimum <= number <= maximum:
        raise ValidationError(
            f"{name} must be a finite number within {minimum:g}..{maximum:g}, got {show(value)}"
        )
    return number


def _finite(value: object) -> float | None:
    """``value`` as a float if it is a finite int or float (not a bool)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return number if math.isfinite(number) else None


def storable_text_error(text: str) -> str | None:
    """Why ``text`` cannot be stored, or ``None``: NUL characters and unpaired
    surrogates are refused by PostgreSQL and by UTF-8."""
    if "\x00" in text:
        return "holds a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds an unpaired surrogate"
    return None


def check_text(name: str, value: object, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    """``value`` if it is a non-empty string of at most ``max_length`` characters
    that can be stored."""
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{name} must be a non-empty string, got {show(value)}")
    if len(value) > max_length:
        raise ValidationError(
            f"{name} must be at most {max_length} characters, got {len(value)}: {show(value)}"
        )
    problem = storable_text_error(value)
    if problem is not None:
        raise ValidationError(f"{name} {problem}: {show(value)}")
    return value


def check_many(name: str, values: object) -> list[Any]:
    """``values`` as a list if it is an iterable of items; a bare string, bytes or a
    mapping is refused (iterating it would give characters or keys)."""
    if isinstance(values, str | bytes | bytearray | memoryview | Mapping) or not isinstance(
        values, Iterable
    ):
        raise ValidationError(f"{name} must be a list of items, got {show(values)}")
    return list(values)


def check_ids(name: str, values: object) -> list[str]:
    """``values`` as a list of storable ids (see :func:`check_many`)."""
    return [check_text(f"each of {name}", value) for value in check_many(name, values)]


def check_payload(value: object, what: str, *, string_keys: bool) -> None:
    """Refuse a payload that would not read back exactly: nesting deeper than
    ``MAX_PAYLOAD_DEPTH``, NaN or infinite numbers, text with unpaired surrogates,
    and (when ``string_keys``) mapping keys that are not strings.

    ``value`` is the payload as builtins (dicts, lists, tuples, strings, numbers).
    Raises :class:`~queuert.errors.InputValidationError` naming ``what``.
    """
    # Iterative, so that a deep payload cannot exhaust the interpreter's stack here.
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise InputValidationError(
                    f"{what} holds text with an unpaired surrogate: {show(item)}"
                ) from None
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise InputValidationError(
                    f"{what} holds {item!r}, which JSON cannot store: {show(value)}"
                )
        elif isinstance(item, dict | list | tuple | set | frozenset):
            if depth >= MAX_PAYLOAD_DEPTH:
                raise InputValidationError(
                    f"{what} nests deeper than {MAX_PAYLOAD_DEPTH} levels: {show(value)}"
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if string_keys and not isinstance(key, str):
                        raise InputValidationError(
                            f"{what} has a key that is not a string: {show(key)} in {show(value)}"
                        )
                    stack.append((key, depth + 1))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
