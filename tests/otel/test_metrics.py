"""Metrics of an instrumented application: the documented names and units, and
values that count what happened."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import queuert.otel
from queuert import ChainFailedError, MemoryStateAdapter, Queuert
from queuert.otel import METRICS
from tests.otel.chains import CHAINS, FAILING, TWO_STEP, Done, Step, register
from tests.otel.conftest import Telemetry
from tests.waiting import eventually

DOCS = Path(__file__).resolve().parents[2] / "docs" / "observability.md"


def total(metric: Metric, **attributes: Any) -> float:
    """The sum of a counter's points (or the count of a histogram's) whose
    attributes include ``attributes``."""
    found = 0.0
    for point in metric.data.data_points:
        if not attributes.items() <= dict(point.attributes or {}).items():
            continue
        if isinstance(point, HistogramDataPoint):
            found += point.count
        else:
            assert isinstance(point, NumberDataPoint)
            found += point.value
    return found


async def exercise(telemetry: Telemetry) -> None:
    """A two-step chain that completes (with one heartbeat), a chain that fails
    after two attempts, a chain cancelled before it starts and a lease that expires."""
    app = telemetry.app
    worker = app.worker(concurrency=2, poll_interval=0.02)
    register(worker)
    async with worker:
        done = await app.enqueue_job_chain(None, TWO_STEP, Step(1))
        failing = await app.enqueue_job_chain(None, FAILING, Step(2))
        await app.wait_for_chain(done, timeout=10, poll_interval=0.02)
        with contextlib.suppress(ChainFailedError):
            await app.wait_for_chain(failing, timeout=10, poll_interval=0.02)
        later = await app.enqueue_job_chain(None, TWO_STEP, Step(3), delay=timedelta(hours=1))
        await app.cancel_chain(later.id)
    # A lease taken by a worker that went away, reaped by another.
    await app.enqueue_job_chain(None, FAILING, Step(4))
    (taken,) = await app.state.acquire_jobs(
        tx=None, queues=[FAILING.name], limit=1, owner="gone", lease_ms=1
    )
    reaper = app.worker()
    register(reaper)

    async def reaped() -> bool:
        return bool(await reaper.reap_once())

    await eventually(reaped, message=f"the lease of {taken.id} expired")


async def test_metrics_count_what_happened(telemetry: Telemetry) -> None:
    await exercise(telemetry)
    metrics = telemetry.metrics()

    created = metrics["queuert.job.created"]
    assert total(created) == 5
    assert total(created, **{"messaging.destination.name": "otel-two-step:second"}) == 1
    assert total(metrics["queuert.job.attempt.started"]) == 4
    assert total(metrics["queuert.job.attempt.completed"]) == 2
    failed = metrics["queuert.job.attempt.failed"]
    assert total(failed, **{"queuert.job.retried": True}) == 1
    assert total(failed, **{"queuert.job.retried": False}) == 1
    assert total(metrics["queuert.job.lease.renewed"]) == 1
    assert total(metrics["queuert.job.lease.expired"]) == 1
    assert total(metrics["queuert.chain.completed"], **{"queuert.chain.name": TWO_STEP.name}) == 1
    assert total(metrics["queuert.chain.failed"], **{"queuert.chain.name": FAILING.name}) == 1
    assert total(metrics["queuert.chain.cancelled"]) == 1
    durations = metrics["queuert.job.attempt.duration"]
    assert total(durations, **{"queuert.job.attempt.outcome": "continued"}) == 1
    assert total(durations, **{"queuert.job.attempt.outcome": "completed"}) == 1
    assert total(durations, **{"queuert.job.attempt.outcome": "retried"}) == 1
    assert total(durations, **{"queuert.job.attempt.outcome": "failed"}) == 1
    assert total(metrics["queuert.job.queue.latency"]) == 4
    # Completed, failed and cancelled chains; the reaped job still has an attempt left.
    assert total(metrics["queuert.chain.duration"]) == 3
    for point in metrics["queuert.chain.duration"].data.data_points:
        assert isinstance(point, HistogramDataPoint) and point.min >= 0


async def test_metrics_have_the_documented_names_and_units(telemetry: Telemetry) -> None:
    await exercise(telemetry)
    await telemetry.observer.refresh_job_counts()
    metrics = telemetry.metrics()
    assert set(metrics) == {spec.name for spec in METRICS}
    for spec in METRICS:
        assert metrics[spec.name].unit == spec.unit, spec.name
    documented = {
        name: unit
        for name, unit in re.findall(
            r"^\| `(queuert\.[a-z._]+)` \| \w+ \| `([^`]+)` \|", DOCS.read_text("utf-8"), re.M
        )
    }
    assert documented == {spec.name: spec.unit for spec in METRICS}


async def test_a_chain_completed_from_outside_a_worker_is_counted(telemetry: Telemetry) -> None:
    app = telemetry.app
    handle = await app.enqueue_job_chain(None, TWO_STEP, Step(1))
    await app.complete_job(None, handle.id, output=Done(1))
    metrics = telemetry.metrics()
    chain = {"queuert.chain.name": TWO_STEP.name}
    assert total(metrics["queuert.chain.completed"], **chain) == 1
    assert total(metrics["queuert.chain.duration"], **chain) == 1
    (point,) = metrics["queuert.chain.duration"].data.data_points
    assert isinstance(point, HistogramDataPoint) and point.min >= 0


def gauge(telemetry: Telemetry) -> dict[tuple[str, str], float]:
    metric = telemetry.metrics().get("queuert.jobs")
    if metric is None:
        return {}
    values = {}
    for point in metric.data.data_points:
        assert isinstance(point, NumberDataPoint)
        attributes = dict(point.attributes or {})
        key = (str(attributes["messaging.destination.name"]), str(attributes["queuert.job.status"]))
        values[key] = point.value
    return values


async def test_the_jobs_gauge_reads_the_store_at_most_every_interval() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    app = Queuert(state=MemoryStateAdapter(), chains=CHAINS)
    observer = queuert.otel.instrument(app, meter_provider=provider, job_counts_interval=3600)
    await app.migrate()
    telemetry = Telemetry(app, TracerProvider(), InMemorySpanExporter(), reader, observer)
    await app.enqueue_job_chains(None, TWO_STEP, [Step(n) for n in range(3)])

    def reads() -> int:
        return app.metrics.get("state.count_jobs.calls")

    assert gauge(telemetry) == {}  # nothing read yet: this collection asks for a read
    await eventually(lambda: reads() == 1, message="the gauge read the store")
    assert gauge(telemetry) == {(TWO_STEP.name, "pending"): 3}
    await app.state.acquire_jobs(
        tx=None, queues=[TWO_STEP.name], limit=1, owner="w", lease_ms=60_000
    )
    # Within the interval collections report the last numbers without reading again.
    assert gauge(telemetry) == {(TWO_STEP.name, "pending"): 3}
    await asyncio.sleep(0)
    assert reads() == 1
    await telemetry.observer.refresh_job_counts()
    assert gauge(telemetry) == {(TWO_STEP.name, "pending"): 2, (TWO_STEP.name, "running"): 1}
    await app.close()
    provider.shutdown()


async def test_a_deduplicated_start_is_traced_but_not_counted_as_created(
    telemetry: Telemetry,
) -> None:
    app = telemetry.app
    first = await app.enqueue_job_chain(None, TWO_STEP, Step(1), dedup_key="upload-1")
    again = await app.enqueue_job_chains(
        None, TWO_STEP, [Step(2), Step(3)], dedup_keys=["upload-1", "upload-2"]
    )
    assert [h.deduplicated for h in again] == [True, False] and again[0].id == first.id
    assert total(telemetry.metrics()["queuert.job.created"]) == 2
    creates = [s for s in telemetry.finished() if s.name == f"create {TWO_STEP.name}"]
    marks = [dict(s.attributes or {}).get("queuert.deduplicated", False) for s in creates]
    assert marks == [False, True, False]
