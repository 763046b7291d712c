"""JSON logs in one call, for worker processes whose output a log pipeline reads.

``queuert.logging.configure_json_logging()`` makes every record of the process
(queuert's and the application's) one JSON object per line: ``time`` (ISO 8601,
UTC), ``level``, ``logger``, ``message``, the job's fields when the record is
about a job (``job_id``, ``chain_id``, ``queue``, ``attempt``, ``worker_id``; see
docs/observability.md), ``exception`` with the traceback when there is one,
``trace_id`` and ``span_id`` when an OpenTelemetry span is current (only if the
application already imported OpenTelemetry), and any other ``extra`` the caller
gave that JSON can hold.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from queuert.errors import ValidationError
from queuert.validation import show

__all__ = ["JsonFormatter", "configure_json_logging"]

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def _current_span_ids() -> dict[str, str]:
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:  # never imported here: logs must not pull OpenTelemetry in
        return {}
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one line of JSON (fields in the module's docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _STANDARD or key in data or key.startswith("_"):
                continue
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                value = repr(value)
            data[key] = value
        data.update(_current_span_ids())
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, ensure_ascii=False, default=repr)


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_json_logging` installs (found again by its type)."""


def configure_json_logging(
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    logger: str | None = None,
) -> logging.Handler:
    """Send the records of ``logger`` (the root logger by default, so the
    application's too) at ``level`` and above to ``stream`` (stderr by default) as
    JSON lines, and return the handler. Calling it again replaces the handler it
    installed before instead of adding a second one. Raises ValidationError for an
    unknown level."""
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValidationError(f"unknown log level {show(level)}")
        level = number
    elif not isinstance(level, int) or isinstance(level, bool):
        raise ValidationError(f"log level must be an int or a level name, got {show(level)}")
    target = logging.getLogger(logger)
    for old in [h for h in target.handlers if isinstance(h, _JsonHandler)]:
        target.removeHandler(old)
    handler = _JsonHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter())
    target.addHandler(handler)
    target.setLevel(level)
    return handler
