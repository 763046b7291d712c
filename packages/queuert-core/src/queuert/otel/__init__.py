"""OpenTelemetry traces and metrics for a queuert application (extra ``otel``).

``instrument(app)`` makes every chain start and continuation a PRODUCER span whose
context is stored with the job, and every attempt a CONSUMER span, its child in
the same trace wherever the worker runs, with child spans ``claim``, ``process``
and ``finalize``. Metrics are listed in :data:`METRICS` and docs/observability.md.

Only this module imports OpenTelemetry: an application that does not call
:func:`instrument` does not import it. It needs ``opentelemetry-api`` alone; the
SDK and exporters are the application's choice.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from opentelemetry import metrics, trace

from queuert.client import Queuert
from queuert.errors import ValidationError
from queuert.otel.instruments import METRICS, Instruments, MetricSpec
from queuert.otel.job_counts import JobCounts
from queuert.otel.observer import CHAIN_STARTED_KEY, SYSTEM, OpenTelemetryObserver
from queuert.validation import check_seconds, show

__all__ = [
    "CHAIN_STARTED_KEY",
    "METRICS",
    "SYSTEM",
    "MetricSpec",
    "OpenTelemetryObserver",
    "instrument",
]

INSTRUMENTATION_NAME = "queuert"


def instrument(
    app: Queuert[Any],
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    job_counts_interval: float = 15.0,
) -> OpenTelemetryObserver:
    """Trace and measure ``app`` and its workers with OpenTelemetry, through the
    given providers or the global ones. The ``queuert.jobs`` gauge reads the
    store at most every ``job_counts_interval`` seconds. Call it once per
    application, before starting chains or workers. Raises ValidationError when
    ``app`` is not a :class:`~queuert.Queuert` or is already observed, or for a bad
    interval."""
    if not isinstance(app, Queuert):
        raise ValidationError(f"app must be a Queuert application, got {show(app)}")
    interval = check_seconds("job_counts_interval", job_counts_interval)
    if app.observer is not None:
        raise ValidationError("this application already has an observer")
    tracer = trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=tracer_provider)
    meter = metrics.get_meter(INSTRUMENTATION_NAME, meter_provider=meter_provider)
    counts = JobCounts(app.state, interval)
    with contextlib.suppress(RuntimeError):  # no running loop yet: bound on first use
        counts.bind(asyncio.get_running_loop())
    observer = OpenTelemetryObserver(
        tracer=tracer, instruments=Instruments(meter, job_counts=counts.observe), job_counts=counts
    )
    app.observe(observer)
    return observer
