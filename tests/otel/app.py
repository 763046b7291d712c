"""The application the OpenTelemetry tests instrument, and a worker process for the
cross-process trace::

    python -m tests.otel.app --state URL --spans FILE

The worker process traces to an in-memory exporter, prints ``READY`` once working,
and on SIGTERM stops, then writes every finished span to ``FILE`` as JSON (one
object per span: name, kind, trace and span ids, parent span id, status, events,
attributes) and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import queuert
import queuert.otel
from tests.otel.chains import CHAINS, register


def span_dict(span: ReadableSpan) -> dict[str, Any]:
    """What the tests read of a finished span, as JSON-compatible values."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": context.trace_id,
        "span_id": context.span_id,
        "parent_id": span.parent.span_id if span.parent is not None else None,
        "status": span.status.status_code.name,
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
        "attributes": dict(span.attributes or {}),
    }


async def _serve(state: str) -> list[dict[str, Any]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = await queuert.Queuert.from_url(chains=CHAINS, state=state, notify="none")
    queuert.otel.instrument(app, tracer_provider=provider)
    worker = app.worker(concurrency=2, poll_interval=0.05)
    register(worker)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with worker:
        print("READY", flush=True)
        await stop.wait()
    await app.close()
    return [span_dict(span) for span in exporter.get_finished_spans()]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--spans", required=True, type=Path)
    args = parser.parse_args(argv)
    spans = asyncio.run(_serve(args.state))
    args.spans.write_text(json.dumps(spans), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1:])
