"""The OpenTelemetry observer: spans and metrics from the hooks of
:class:`queuert.observer.Observer`."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from queuert.context import JobContext
from queuert.observer import Observer, Outcome, Phase
from queuert.otel.instruments import Instruments
from queuert.otel.job_counts import JobCounts
from queuert.records import ChainRecord, JobError, JobRecord, JobStatus, Lease, NewJob

SYSTEM = "queuert"
"""The value of ``messaging.system`` on every span."""

CHAIN_STARTED_KEY = "queuert-chain-started"
"""Key of the stored trace context holding the chain's start (ISO 8601, database
clock), carried from job to job so the chain's duration is known where it ends."""

_Key = tuple[str, int]


def _key(lease: Lease) -> _Key:
    return (lease.job_id, lease.attempt)


def _job_attributes(job: NewJob | JobRecord) -> dict[str, AttributeValue]:
    return {
        "messaging.system": SYSTEM,
        "messaging.destination.name": job.queue,
        "messaging.message.id": job.id,
        "queuert.chain.id": job.chain_id,
        "queuert.chain.name": job.chain_name,
        "queuert.job.id": job.id,
    }


def _metric_attributes(queue: str, chain_name: str) -> dict[str, AttributeValue]:
    return {"messaging.destination.name": queue, "queuert.chain.name": chain_name}


def _carrier(text: str | None) -> dict[str, str]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _chain_started(record: JobRecord) -> datetime | None:
    if record.position == 0:
        return record.created_at
    started = _carrier(record.trace_context).get(CHAIN_STARTED_KEY)
    if started is None:
        return None
    try:
        return datetime.fromisoformat(started)
    except ValueError:
        return None


def _error_event(span: Span, error: JobError) -> None:
    # The event record_exception would add, from the error as recorded.
    attributes: dict[str, AttributeValue] = {
        "exception.type": error.type,
        "exception.message": error.message,
    }
    if error.traceback is not None:
        attributes["exception.stacktrace"] = error.traceback
    span.add_event("exception", attributes)
    span.set_status(Status(StatusCode.ERROR, f"{error.type}: {error.message}"))


@dataclasses.dataclass(slots=True, eq=False)
class _Attempt:
    record: JobRecord
    span: Span
    started: float
    process_start_ns: int
    chain_started: datetime | None
    metric_attributes: dict[str, AttributeValue]
    process_closed: bool = False
    finalizing: bool = False
    pending: Outcome | None = None
    pending_created: list[NewJob] = dataclasses.field(default_factory=list)
    outcome: Outcome | None = None
    lease_lost: bool = False

    def database_now(self) -> datetime:
        """Now by the database clock: the acquisition time plus the time since."""
        return self.record.updated_at + timedelta(seconds=time.perf_counter() - self.started)


class OpenTelemetryObserver(Observer):
    """Records spans with ``tracer`` and metrics on ``instruments``."""

    def __init__(self, *, tracer: Tracer, instruments: Instruments, job_counts: JobCounts) -> None:
        self._tracer = tracer
        self._metrics = instruments
        self._attempts: dict[_Key, _Attempt] = {}
        self._job_counts = job_counts
        self._deduplicated: set[str] = set()
        """Ids of jobs of open creating blocks that were not written (a held key)."""

    async def refresh_job_counts(self) -> None:
        """Read the ``queuert.jobs`` gauge's counts from the store now (they are
        otherwise read when collected, at most every ``job_counts_interval``)."""
        self._job_counts.bind(asyncio.get_running_loop())
        await self._job_counts.refresh()

    # -- producing ---------------------------------------------------------------------

    @contextmanager
    def creating(self, jobs: Sequence[NewJob], *, by: Lease | None) -> Iterator[Sequence[NewJob]]:
        self._job_counts.bind(asyncio.get_running_loop())
        attempt = None if by is None else self._attempts.get(_key(by))
        chain_started = None if attempt is None else attempt.chain_started
        spans: list[Span] = []
        traced: list[NewJob] = []
        for job in jobs:
            span = self._tracer.start_span(
                f"create {job.queue}",
                kind=SpanKind.PRODUCER,
                attributes={
                    **_job_attributes(job),
                    "messaging.operation.type": "create",
                    "messaging.operation.name": "create",
                },
            )
            carrier: dict[str, str] = {}
            propagate.inject(carrier, context=trace.set_span_in_context(span))
            if chain_started is not None:
                carrier[CHAIN_STARTED_KEY] = chain_started.isoformat()
            context_text = json.dumps(carrier, separators=(",", ":")) if carrier else None
            if context_text != job.trace_context:
                job = dataclasses.replace(job, trace_context=context_text)
            traced.append(job)
            spans.append(span)
        try:
            yield traced
        except BaseException as exc:
            self._deduplicated.difference_update(job.id for job in traced)
            for span in spans:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                span.end()
            raise
        skipped = {job.id for job in traced} & self._deduplicated
        self._deduplicated -= skipped
        for job, span in zip(traced, spans, strict=True):
            if job.id in skipped:
                # The start returned the chain holding the key: its span says so.
                span.set_attribute("queuert.deduplicated", True)
            span.end()
        if skipped:
            traced = [job for job in traced if job.id not in skipped]
        if attempt is not None and attempt.finalizing:
            attempt.pending_created.extend(traced)
        else:
            self._count_created(traced)

    def deduplicated(self, jobs: Sequence[NewJob]) -> None:
        self._deduplicated.update(job.id for job in jobs)

    def _count_created(self, jobs: Sequence[NewJob]) -> None:
        for job in jobs:
            self._metrics.jobs_created.add(1, _metric_attributes(job.queue, job.chain_name))

    # -- consuming ------------------------------------------------------------------------

    @contextmanager
    def attempt(self, ctx: JobContext[Any, Any]) -> Iterator[None]:
        self._job_counts.bind(asyncio.get_running_loop())
        record = ctx.record
        parent: Context | None = None
        carrier = _carrier(record.trace_context)
        if carrier:
            parent = propagate.extract(carrier)
        span = self._tracer.start_span(
            f"process {record.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                **_job_attributes(record),
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "queuert.job.attempt": record.attempt,
                "queuert.worker.id": ctx.lease.owner,
            },
        )
        metric_attributes = _metric_attributes(record.queue, record.chain_name)
        self._metrics.attempts_started.add(1, metric_attributes)
        latency = (record.updated_at - record.scheduled_at).total_seconds()
        self._metrics.queue_latency.record(max(latency, 0.0), metric_attributes)
        state = _Attempt(
            record=record,
            span=span,
            started=time.perf_counter(),
            process_start_ns=time.time_ns(),
            chain_started=_chain_started(record),
            metric_attributes=metric_attributes,
        )
        key = (record.id, record.attempt)
        self._attempts[key] = state
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            yield
        finally:
            otel_context.detach(token)
            if self._attempts.get(key) is state:
                del self._attempts[key]
            self._finish(state, lost=ctx.lease_lost or state.lease_lost)

    def _close_process(self, attempt: _Attempt) -> None:
        if attempt.process_closed:
            return
        attempt.process_closed = True
        self._tracer.start_span(
            "process",
            context=trace.set_span_in_context(attempt.span),
            start_time=attempt.process_start_ns,
        ).end()

    @contextmanager
    def phase(self, lease: Lease, name: Phase) -> Iterator[None]:
        attempt = self._attempts.get(_key(lease))
        if attempt is None:
            yield
            return
        if name == "finalize":
            self._close_process(attempt)
        span = self._tracer.start_span(name, context=trace.set_span_in_context(attempt.span))
        token = otel_context.attach(trace.set_span_in_context(span))
        attempt.finalizing = name == "finalize"
        try:
            yield
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            attempt.pending = None
            attempt.pending_created.clear()
            raise
        else:
            if attempt.pending is not None:
                attempt.outcome = attempt.pending
                attempt.pending = None
            self._count_created(attempt.pending_created)
            attempt.pending_created.clear()
        finally:
            attempt.finalizing = False
            otel_context.detach(token)
            span.end()
            if name == "claim":
                attempt.process_start_ns = time.time_ns()

    def ended(
        self,
        lease: Lease,
        outcome: Outcome,
        *,
        error: JobError | None = None,
        delay_ms: int | None = None,
    ) -> None:
        attempt = self._attempts.get(_key(lease))
        if attempt is None:
            return
        self._close_process(attempt)
        if attempt.finalizing:
            attempt.pending = outcome
        else:
            attempt.outcome = outcome
        span = attempt.span
        if error is not None and outcome in ("retried", "failed"):
            _error_event(span, error)
        if outcome == "retried":
            attributes: dict[str, AttributeValue] = {"queuert.job.attempt": lease.attempt}
            if delay_ms is not None:
                attributes["queuert.retry.delay_ms"] = delay_ms
            span.add_event("retry scheduled", attributes)
        elif outcome in ("rescheduled", "released"):
            span.add_event(outcome)

    def _finish(self, attempt: _Attempt, *, lost: bool) -> None:
        self._close_process(attempt)
        outcome = attempt.outcome
        span = attempt.span
        metrics = self._metrics
        attributes = attempt.metric_attributes
        label: str = outcome if outcome is not None else ("lease_lost" if lost else "abandoned")
        if outcome in ("completed", "continued"):
            metrics.attempts_completed.add(1, attributes)
        elif outcome in ("retried", "failed"):
            metrics.attempts_failed.add(
                1, {**attributes, "queuert.job.retried": outcome == "retried"}
            )
        if outcome == "completed":
            metrics.chains_completed.add(1, {"queuert.chain.name": attempt.record.chain_name})
            self._chain_duration(attempt.record, attempt.chain_started, attempt.database_now())
        elif outcome == "failed":
            metrics.chains_failed.add(1, {"queuert.chain.name": attempt.record.chain_name})
            self._chain_duration(attempt.record, attempt.chain_started, attempt.database_now())
        elif outcome is None and lost:
            span.add_event("lease lost")
            span.set_status(Status(StatusCode.ERROR, "lease lost"))
        metrics.attempt_duration.record(
            time.perf_counter() - attempt.started,
            {**attributes, "queuert.job.attempt.outcome": label},
        )
        span.set_attribute("queuert.job.attempt.outcome", label)
        span.end()

    def _chain_duration(
        self, record: JobRecord, started: datetime | None, ended: datetime | None
    ) -> None:
        if started is None or ended is None:
            return
        self._metrics.chain_duration.record(
            max((ended - started).total_seconds(), 0.0),
            {"queuert.chain.name": record.chain_name},
        )

    # -- leases ---------------------------------------------------------------------------

    def lease_renewed(self, lease: Lease, until: datetime) -> None:
        attempt = self._attempts.get(_key(lease))
        if attempt is None:
            return
        self._metrics.leases_renewed.add(1, attempt.metric_attributes)
        attempt.span.add_event("heartbeat", {"queuert.lease.until": until.isoformat()})

    def lease_lost(self, lease: Lease) -> None:
        attempt = self._attempts.get(_key(lease))
        if attempt is not None:
            attempt.lease_lost = True

    def leases_expired(self, records: Sequence[JobRecord]) -> None:
        metrics = self._metrics
        for record in records:
            metrics.leases_expired.add(1, _metric_attributes(record.queue, record.chain_name))
            if record.status is JobStatus.FAILED:
                metrics.chains_failed.add(1, {"queuert.chain.name": record.chain_name})
                self._chain_duration(record, _chain_started(record), record.completed_at)

    def chain_completed(self, record: JobRecord) -> None:
        self._metrics.chains_completed.add(1, {"queuert.chain.name": record.chain_name})
        self._chain_duration(record, _chain_started(record), record.completed_at)

    def chain_cancelled(self, record: ChainRecord) -> None:
        if record.status is not JobStatus.CANCELLED:
            return
        self._metrics.chains_cancelled.add(1, {"queuert.chain.name": record.chain_name})
        ended = record.completed_at or record.updated_at
        self._metrics.chain_duration.record(
            max((ended - record.created_at).total_seconds(), 0.0),
            {"queuert.chain.name": record.chain_name},
        )
