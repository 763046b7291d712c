"""The observer hooks core calls: in order, once each, with the outcome the
worker wrote; an application without an observer calls none."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest

import queuert
from queuert import ChainFailedError, JobError, JobRecord, Lease, NewJob, Observer, ValidationError
from queuert.context import JobContext
from queuert.observer import Outcome, Phase
from tests.otel.chains import CHAINS, FAILING, TWO_STEP, Step, register


class Recorder(Observer):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    @contextlib.contextmanager
    def creating(self, jobs: Sequence[NewJob], *, by: Lease | None) -> Iterator[Sequence[NewJob]]:
        self.calls.append(("creating", [job.queue for job in jobs], by is not None))
        yield [replace(job, trace_context=f'{{"from":"{job.queue}"}}') for job in jobs]
        self.calls.append(("created",))

    @contextlib.contextmanager
    def attempt(self, ctx: JobContext[Any, Any]) -> Iterator[None]:
        self.calls.append(("attempt", ctx.record.queue, ctx.record.trace_context))
        yield
        self.calls.append(("attempt done", ctx.lease_lost))

    @contextlib.contextmanager
    def phase(self, lease: Lease, name: Phase) -> Iterator[None]:
        self.calls.append(("phase", name))
        yield
        self.calls.append(("phase done", name))

    def ended(
        self,
        lease: Lease,
        outcome: Outcome,
        *,
        error: JobError | None = None,
        delay_ms: int | None = None,
    ) -> None:
        self.calls.append(("ended", outcome, error is not None, delay_ms is not None))

    def lease_renewed(self, lease: Lease, until: datetime) -> None:
        self.calls.append(("renewed",))

    def leases_expired(self, records: Sequence[JobRecord]) -> None:
        self.calls.append(("expired", len(records)))


async def run(app: queuert.Queuert[Any], chain: Any) -> None:
    worker = app.worker(poll_interval=0.02)
    register(worker)
    async with worker:
        handle = await app.enqueue_job_chain(None, chain, Step(1))
        with contextlib.suppress(ChainFailedError):
            await app.wait_for_chain(handle, timeout=10, poll_interval=0.02)


async def test_hooks_follow_a_two_step_chain() -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS)
    recorder = Recorder()
    app.observe(recorder)
    await app.migrate()
    await run(app, TWO_STEP)
    second = f"{TWO_STEP.name}:second"
    assert recorder.calls == [
        ("creating", [TWO_STEP.name], False),
        ("created",),
        # The stored trace context is what the hook gave.
        ("attempt", TWO_STEP.name, f'{{"from":"{TWO_STEP.name}"}}'),
        ("phase", "claim"),
        ("phase done", "claim"),
        ("renewed",),
        ("phase", "finalize"),
        ("creating", [second], True),
        ("created",),
        ("ended", "continued", False, False),
        ("phase done", "finalize"),
        ("attempt done", False),
        ("attempt", second, f'{{"from":"{second}"}}'),
        ("phase", "finalize"),
        ("ended", "completed", False, False),
        ("phase done", "finalize"),
        ("attempt done", False),
    ]


async def test_failed_attempts_end_retried_then_failed() -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS)
    recorder = Recorder()
    app.observe(recorder)
    await app.migrate()
    await run(app, FAILING)
    ends = [call for call in recorder.calls if call[0] == "ended"]
    assert ends == [("ended", "retried", True, True), ("ended", "failed", True, False)]


def test_one_observer_per_application() -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS)
    app.observe(Recorder())
    with pytest.raises(ValidationError, match="already"):
        app.observe(Recorder())
    with pytest.raises(ValidationError, match="Observer"):
        queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=CHAINS).observe(object())  # type: ignore[arg-type]
