"""Spans of an instrumented application: a chain is one trace from the code that
started it through every attempt of every job, with the phases as child spans."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import queuert.otel
from queuert import (
    ChainFailedError,
    MemoryStateAdapter,
    Queuert,
    SchemaNotMigratedError,
    ValidationError,
)
from queuert_sqlite import SqliteStateAdapter
from tests.otel.chains import CHAINS, FAILING, OVERRUN, TWO_STEP, Step, register
from tests.otel.conftest import Telemetry


def only(spans: list[ReadableSpan], name: str) -> ReadableSpan:
    found = [span for span in spans if span.name == name]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


def span_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else span.parent.span_id


def children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[str]:
    return sorted(span.name for span in spans if parent_id(span) == span_id(parent))


async def run_chain(telemetry: Telemetry, chain: Any, n: int) -> None:
    app = telemetry.app
    tracer = telemetry.tracer_provider.get_tracer("tests")
    worker = app.worker(concurrency=2, poll_interval=0.02)
    register(worker)
    async with worker:
        with tracer.start_as_current_span("request"):
            handle = await app.enqueue_job_chain(None, chain, Step(n))
        with contextlib.suppress(ChainFailedError):
            await app.wait_for_chain(handle, timeout=10, poll_interval=0.02)
    # Leaving the block stopped the worker: every attempt's span has ended.


async def test_a_two_step_chain_is_one_trace_with_phases_as_children(
    telemetry: Telemetry,
) -> None:
    await run_chain(telemetry, TWO_STEP, 1)
    spans = telemetry.finished()
    request = only(spans, "request")
    start = only(spans, "create otel-two-step")
    first = only(spans, "process otel-two-step")
    continuation = only(spans, "create otel-two-step:second")
    second = only(spans, "process otel-two-step:second")

    assert {span.context.trace_id for span in spans if span.context} == {request.context.trace_id}
    assert start.kind is SpanKind.PRODUCER and parent_id(start) == span_id(request)
    assert first.kind is SpanKind.CONSUMER and parent_id(first) == span_id(start)
    assert children(spans, first) == ["claim", "finalize", "process"]
    finalize = next(s for s in spans if s.name == "finalize" and parent_id(s) == span_id(first))
    assert continuation.kind is SpanKind.PRODUCER
    assert parent_id(continuation) == span_id(finalize)
    assert parent_id(second) == span_id(continuation)
    assert children(spans, second) == ["finalize", "process"]

    attributes = dict(first.attributes or {})
    assert attributes["messaging.system"] == "queuert"
    assert attributes["messaging.destination.name"] == "otel-two-step"
    assert attributes["messaging.operation.type"] == "process"
    assert attributes["queuert.chain.id"] == attributes["queuert.job.id"]
    assert attributes["queuert.job.attempt"] == 1
    assert dict(second.attributes or {})["queuert.chain.id"] == attributes["queuert.chain.id"]
    assert [event.name for event in first.events] == ["heartbeat"]
    assert first.status.status_code is StatusCode.UNSET


async def test_a_failed_attempt_sets_the_span_status_and_records_the_exception(
    telemetry: Telemetry,
) -> None:
    await run_chain(telemetry, FAILING, 7)
    spans = telemetry.finished()
    attempts = sorted(
        (s for s in spans if s.name == "process otel-failing" and s.kind is SpanKind.CONSUMER),
        key=lambda s: dict(s.attributes or {})["queuert.job.attempt"],  # type: ignore[arg-type,return-value]
    )
    assert len(attempts) == 2
    for number, attempt in enumerate(attempts, start=1):
        assert attempt.status.status_code is StatusCode.ERROR
        assert "Boom" in (attempt.status.description or "")
        (exception,) = [e for e in attempt.events if e.name == "exception"]
        event = dict(exception.attributes or {})
        assert str(event["exception.type"]).endswith("Boom")
        assert event["exception.message"] == f"attempt {number} of 7 went wrong"
        assert "raise Boom" in str(event["exception.stacktrace"])
    assert "retry scheduled" in [e.name for e in attempts[0].events]
    assert "retry scheduled" not in [e.name for e in attempts[1].events]
    assert dict(attempts[1].attributes or {})["queuert.job.attempt.outcome"] == "failed"


async def test_an_attempt_that_loses_its_lease_says_so(telemetry: Telemetry) -> None:
    app = telemetry.app
    worker = app.worker(lease_ms=50, reaper_interval=0.01, poll_interval=0.02)
    register(worker)
    async with worker:
        handle = await app.enqueue_job_chain(None, OVERRUN, Step(500))
        with pytest.raises(ChainFailedError):
            await app.wait_for_chain(handle, timeout=10, poll_interval=0.02)
    attempt = only(telemetry.finished(), "process otel-overrun")
    assert "lease lost" in [event.name for event in attempt.events]
    assert attempt.status.status_code is StatusCode.ERROR
    assert dict(attempt.attributes or {})["queuert.job.attempt.outcome"] == "lease_lost"


async def test_a_chain_start_that_fails_to_write_marks_its_producer_span(
    tmp_path: Path,
) -> None:
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    app = Queuert(state=SqliteStateAdapter(str(tmp_path / "unmigrated.db")), chains=CHAINS)
    queuert.otel.instrument(app, tracer_provider=provider)
    try:
        with pytest.raises(SchemaNotMigratedError):
            await app.enqueue_job_chain(None, TWO_STEP, Step(1))
    finally:
        await app.close()
    (span,) = spans.get_finished_spans()
    assert span.name == "create otel-two-step"
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


async def test_an_application_is_instrumented_once() -> None:
    app = Queuert(state=MemoryStateAdapter(), chains=CHAINS)
    queuert.otel.instrument(app)
    with pytest.raises(ValidationError, match="already"):
        queuert.otel.instrument(app)
    with pytest.raises(ValidationError, match="Queuert application"):
        queuert.otel.instrument("app")  # type: ignore[arg-type]
