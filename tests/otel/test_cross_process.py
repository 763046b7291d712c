"""A chain started in this process and run by a worker in another one reads as one
trace: the stored trace context carries the producer span across processes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import queuert.otel
from queuert import Queuert
from queuert_sqlite import SqliteStateAdapter
from tests.e2e.backends import env_with_pythonpath
from tests.otel.app import span_dict
from tests.otel.chains import CHAINS, TWO_STEP, Done, Step

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]


def named(spans: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [span for span in spans if span["name"] == name]
    assert len(found) == 1, [span["name"] for span in spans]
    return found[0]


async def test_a_chain_run_by_a_worker_process_is_one_trace(tmp_path: Path) -> None:
    db = tmp_path / "jobs.db"
    spans_file = tmp_path / "spans.json"
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    app = Queuert(state=SqliteStateAdapter(str(db)), chains=CHAINS)
    queuert.otel.instrument(app, tracer_provider=provider)
    await app.migrate()
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.otel.app",
        "--state",
        f"sqlite:///{db}",
        "--spans",
        str(spans_file),
        cwd=REPO_ROOT,
        env=env_with_pythonpath(),
        stdout=subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        async with asyncio.timeout(60):
            assert (await worker.stdout.readline()).strip() == b"READY"
        with provider.get_tracer("tests").start_as_current_span("request"):
            handle = await app.enqueue_job_chain(None, TWO_STEP, Step(1))
        assert await app.wait_for_chain(handle, timeout=60, poll_interval=0.05) == Done(2)
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            assert await worker.wait() == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        await app.close()

    here = [span_dict(span) for span in exporter.get_finished_spans()]
    there = json.loads(spans_file.read_text(encoding="utf-8"))
    request = named(here, "request")
    start = named(here, "create otel-two-step")
    first = named(there, "process otel-two-step")
    continuation = named(there, "create otel-two-step:second")
    second = named(there, "process otel-two-step:second")

    assert {span["trace_id"] for span in here + there} == {request["trace_id"]}
    assert start["kind"] == SpanKind.PRODUCER.name
    assert start["parent_id"] == request["span_id"]
    assert first["kind"] == SpanKind.CONSUMER.name
    assert first["parent_id"] == start["span_id"]
    first_children = {s["name"]: s for s in there if s["parent_id"] == first["span_id"]}
    assert sorted(first_children) == ["claim", "finalize", "process"]
    assert continuation["parent_id"] == first_children["finalize"]["span_id"]
    assert second["kind"] == SpanKind.CONSUMER.name
    assert second["parent_id"] == continuation["span_id"]
    assert first["attributes"]["queuert.job.attempt"] == 1
    assert second["attributes"]["queuert.chain.id"] == handle.id


def test_queuert_without_instrumentation_does_not_import_opentelemetry() -> None:
    # A whole run (start a chain, work it through two steps) in a fresh interpreter.
    script = """
import asyncio, sys
import queuert
from tests.otel.chains import CHAINS, TWO_STEP, Step, register

async def main():
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS)
    await app.migrate()
    worker = app.worker(poll_interval=0.02)
    register(worker)
    async with worker:
        handle = await app.enqueue_job_chain(None, TWO_STEP, Step(1))
        print(await app.wait_for_chain(handle, timeout=30, poll_interval=0.02))

asyncio.run(main())
print(sorted(m for m in sys.modules if m.startswith(("opentelemetry", "queuert.otel"))))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env_with_pythonpath(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.splitlines() == ["Done(n=2)", "[]"], done.stderr
