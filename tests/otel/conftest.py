"""An application instrumented with OpenTelemetry SDK providers whose spans and
metrics stay in memory for the test to read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import queuert
import queuert.otel
from queuert import MemoryStateAdapter, Queuert
from tests.otel.chains import CHAINS


@dataclass
class Telemetry:
    app: Queuert[Any]
    tracer_provider: TracerProvider
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    observer: queuert.otel.OpenTelemetryObserver

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, Metric]:
        """Every metric recorded so far, by name."""
        data = self.reader.get_metrics_data()
        found: dict[str, Metric] = {}
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found[metric.name] = metric
        return found


@pytest_asyncio.fixture
async def telemetry() -> AsyncIterator[Telemetry]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    app = queuert.Queuert(state=MemoryStateAdapter(), chains=CHAINS)
    observer = queuert.otel.instrument(
        app, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    await app.migrate()
    yield Telemetry(app, tracer_provider, spans, reader, observer)
    await app.close()
    meter_provider.shutdown()
