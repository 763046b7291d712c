"""The observability setup shown in ``docs/observability.md``: an application traced
and measured with OpenTelemetry, and the process's logs as JSON lines."""

from __future__ import annotations

import logging
from typing import IO, Any

import queuert
import queuert.logging
import queuert.otel
from examples.first_chain import welcome
from queuert_sqlite import SqliteStateAdapter


def instrumented_app(path: str) -> queuert.Queuert[Any]:
    """An application on the SQLite file ``path``, instrumented with the global
    OpenTelemetry providers."""
    # --8<-- [start:instrument]
    app = queuert.Queuert(state=SqliteStateAdapter(path), chains=[welcome])
    queuert.otel.instrument(app)  # global providers, or tracer_provider= / meter_provider=
    # --8<-- [end:instrument]
    return app


def json_logs(stream: IO[str] | None = None) -> logging.Handler:
    """Every record of the process as one JSON object per line (stderr by default)."""
    # --8<-- [start:json-logs]
    handler = queuert.logging.configure_json_logging("INFO", stream=stream)  # root logger
    # --8<-- [end:json-logs]
    return handler
