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
from queuert import (
    ChainFailedError,
    ChainRecord,
    Continuation,
    EnqueueJob,
    Job,
    JobError,
    JobRecord,
    Lease,
    NewJob,
    Observer,
    ValidationError,
)
from queuert.context import JobContext
from queuert.observer import Outcome, Phase
from tests.otel.chains import CHAINS, FAILING, SECOND, TWO_STEP, Done, Step, register
from tests.waiting import eventually


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

    def chain_cancelled(self, record: ChainRecord) -> None:
        self.calls.append(("cancelled", record.id, record.status.value))

    def chain_completed(self, record: JobRecord) -> None:
        self.calls.append(("completed", record.chain_id, record.status.value))


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


async def observed_app() -> tuple[queuert.Queuert[Any], Recorder]:
    app = queuert.Queuert(
        state=queuert.MemoryStateAdapter(), chains=[*CHAINS, BLOCKED_CONTINUATION]
    )
    recorder = Recorder()
    app.observe(recorder)
    await app.migrate()
    return app, recorder


async def test_a_chain_cancelled_through_the_application_is_observed() -> None:
    app, recorder = await observed_app()
    handle = await app.enqueue_job_chain(None, TWO_STEP, Step(1))
    await app.cancel_chain(handle.id)
    assert recorder.calls[-1] == ("cancelled", handle.id, "cancelled")
    await app.close()


async def test_a_chain_completed_from_outside_a_worker_is_observed() -> None:
    app, recorder = await observed_app()
    handle = await app.enqueue_job_chain(None, TWO_STEP, Step(1))
    continued = await app.complete_job(None, handle.id, continue_with=(SECOND, Step(2)))
    chain = await app.get_chain(continued.chain_id)
    assert chain is not None
    # A continuation is a creation, not a completion.
    assert not any(call[0] == "completed" for call in recorder.calls)
    await app.complete_job(None, chain.last_job_id, output=Done(2))
    assert recorder.calls[-1] == ("completed", handle.id, "completed")
    await app.close()


async def test_blocked_starts_and_outside_continuations_are_created_through_the_hook() -> None:
    app, recorder = await observed_app()
    blocker = await app.enqueue_job_chain(None, FAILING, Step(1))
    blocked = await app.enqueue_job_chain(None, TWO_STEP, Step(2), blockers=[blocker])
    continued = await app.complete_job(None, blocked.id, continue_with=(SECOND, Step(3)))
    assert recorder.calls[2:] == [
        ("creating", [TWO_STEP.name], False),
        ("created",),
        ("creating", [SECOND.name], False),
        ("created",),
    ]
    first = await app.get_job(blocked.id)
    assert first is not None and first.trace_context == f'{{"from":"{TWO_STEP.name}"}}'
    chain = await app.get_chain(continued.chain_id)
    assert chain is not None
    last = await app.get_job(chain.last_job_id)
    assert last is not None and last.trace_context == f'{{"from":"{SECOND.name}"}}'
    await app.close()


BLOCKED_CONTINUATION = queuert.chain("observer-blocked", input=Step, output=Done)
WAITS = BLOCKED_CONTINUATION.queue("waits", input=Step)


async def test_a_continuation_with_blockers_ends_its_attempt_continued() -> None:
    app, recorder = await observed_app()
    # Nothing runs the blocker, so the continuation stays blocked.
    blocker = await app.enqueue_job_chain(None, FAILING, Step(1))
    worker = app.worker(poll_interval=0.02)

    @worker.handler(BLOCKED_CONTINUATION)
    async def first(job: Job[Step], ctx: JobContext[Any, Done]) -> Done | Continuation:
        async def commit(tx: Any, enqueue_job: EnqueueJob[Done]) -> Done | Continuation:
            return await enqueue_job(WAITS, Step(job.input.n), blockers=[blocker])

        return await ctx.finalize(commit)

    async with worker:
        await app.enqueue_job_chain(None, BLOCKED_CONTINUATION, Step(1))
        await eventually(lambda: ("attempt done", False) in recorder.calls, timeout=10)
    # After the two starts (blocker and chain), each a creating and a created call:
    attempt = recorder.calls[4:]
    assert attempt == [
        ("attempt", BLOCKED_CONTINUATION.name, f'{{"from":"{BLOCKED_CONTINUATION.name}"}}'),
        ("phase", "finalize"),
        ("creating", [WAITS.name], True),
        ("created",),
        ("ended", "continued", False, False),
        ("phase done", "finalize"),
        ("attempt done", False),
    ]
    await app.close()
