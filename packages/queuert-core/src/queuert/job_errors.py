"""How a failed attempt's exception becomes the :class:`~queuert.records.JobError`
stored with its job.

Every adapter must be able to store what is recorded, so the text is sanitised:
NUL characters and surrogate code points (which PostgreSQL ``jsonb`` refuses and
UTF-8 cannot encode) become U+FFFD, the type name is cut to
:data:`TYPE_LIMIT` characters, the message to its first :data:`MESSAGE_LIMIT`
characters and the traceback to its last :data:`TRACEBACK_LIMIT` characters.
Building the record never raises: an exception whose ``__str__`` raises is
recorded as such.
"""

from __future__ import annotations

import re
import traceback

from queuert.records import JobError
from queuert.retry import RetryPolicy

TYPE_LIMIT = 200
"""Characters of an exception's qualified type name that are recorded."""
MESSAGE_LIMIT = 2_000
"""Characters of an exception's message that are recorded (its beginning)."""
TRACEBACK_LIMIT = 8_000
"""Characters of an exception's traceback that are recorded (its end)."""

UNRECORDABLE_TYPE = "queuert.UnrecordableError"
"""The type of the minimal error recorded when an attempt's own error could not be."""

_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def sanitise(text: str) -> str:
    """``text`` with NUL and surrogate code points replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text)


def _type_name(exc: BaseException) -> str:
    cls = type(exc)
    return sanitise(f"{cls.__module__}.{cls.__qualname__}")[:TYPE_LIMIT]


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception as str_error:
        return (
            f"<the exception's __str__ raised {type(str_error).__qualname__}; "
            f"its message is unknown>"
        )
    return sanitise(text[: MESSAGE_LIMIT * 2])[:MESSAGE_LIMIT]


def _traceback(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception:
        # format_exception calls the same __str__ that may raise: keep the frames.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        text = (
            f"Traceback (most recent call last):\n{frames}"
            f"{type(exc).__qualname__}: <message unknown>\n"
        )
    return sanitise(text[-TRACEBACK_LIMIT * 2 :])[-TRACEBACK_LIMIT:]


def job_error(exc: BaseException) -> JobError:
    """The recorded form of ``exc``: sanitised and truncated as the module says.
    Never raises."""
    return JobError(type=_type_name(exc), message=_message(exc), traceback=_traceback(exc))


def unrecordable_error(exc: BaseException, write_error: BaseException) -> JobError:
    """The minimal error recorded in place of ``exc`` when recording it failed with
    ``write_error``."""
    return JobError(
        type=UNRECORDABLE_TYPE,
        message=(
            f"the attempt failed with {_type_name(exc)}, which could not be recorded "
            f"({_type_name(write_error)})"
        ),
    )


def retry_delay_ms(policy: RetryPolicy, attempt: int) -> int:
    """The policy's delay after ``attempt``, or its ``max_delay_ms`` when computing
    it fails (a multiplier whose power overflows)."""
    try:
        return policy.delay_ms(attempt)
    except (ArithmeticError, ValueError):
        return int(policy.max_delay_ms)
