"""The metric instruments queuert records through OpenTelemetry: one table that
names, types, units and describes each, and the instruments made from it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opentelemetry.metrics import CallbackT, Counter, Histogram, Meter, ObservableGauge


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One documented metric."""

    name: str
    kind: Literal["counter", "histogram", "gauge"]
    unit: str
    description: str


JOBS_CREATED = MetricSpec(
    "queuert.job.created",
    "counter",
    "{job}",
    "Jobs written: chain starts (counted when written, in the caller's transaction) and "
    "continuations (counted when their finalize commits).",
)
ATTEMPTS_STARTED = MetricSpec(
    "queuert.job.attempt.started", "counter", "{attempt}", "Attempts a worker started."
)
ATTEMPTS_COMPLETED = MetricSpec(
    "queuert.job.attempt.completed",
    "counter",
    "{attempt}",
    "Attempts that ended their job: with the chain's output or by continuing the chain.",
)
ATTEMPTS_FAILED = MetricSpec(
    "queuert.job.attempt.failed",
    "counter",
    "{attempt}",
    "Attempts that raised; queuert.job.retried tells whether another attempt is scheduled.",
)
LEASES_EXPIRED = MetricSpec(
    "queuert.job.lease.expired",
    "counter",
    "{lease}",
    "Leases the reaper found expired (their jobs went back to pending, or failed).",
)
LEASES_RENEWED = MetricSpec(
    "queuert.job.lease.renewed", "counter", "{lease}", "Lease renewals (heartbeats)."
)
CHAINS_COMPLETED = MetricSpec(
    "queuert.chain.completed", "counter", "{chain}", "Chains that ended with an output."
)
CHAINS_FAILED = MetricSpec(
    "queuert.chain.failed", "counter", "{chain}", "Chains whose job failed for good."
)
CHAINS_CANCELLED = MetricSpec(
    "queuert.chain.cancelled", "counter", "{chain}", "Chains cancelled from outside a worker."
)
ATTEMPT_DURATION = MetricSpec(
    "queuert.job.attempt.duration",
    "histogram",
    "s",
    "Time from an attempt's start in its worker to its end (any outcome, given as "
    "queuert.job.attempt.outcome).",
)
QUEUE_LATENCY = MetricSpec(
    "queuert.job.queue.latency",
    "histogram",
    "s",
    "Time from a job becoming eligible (its scheduled time) to an attempt acquiring it, "
    "by the database clock.",
)
CHAIN_DURATION = MetricSpec(
    "queuert.chain.duration",
    "histogram",
    "s",
    "Time from a chain's start to its end (completed, failed or cancelled), by the "
    "database clock; recorded where the end is written.",
)

JOBS = MetricSpec(
    "queuert.jobs",
    "gauge",
    "{job}",
    "Jobs pending, running or blocked, per queue (messaging.destination.name) and status "
    "(queuert.job.status), read from the store at most every job_counts_interval seconds.",
)

METRICS: tuple[MetricSpec, ...] = (
    JOBS_CREATED,
    ATTEMPTS_STARTED,
    ATTEMPTS_COMPLETED,
    ATTEMPTS_FAILED,
    LEASES_EXPIRED,
    LEASES_RENEWED,
    CHAINS_COMPLETED,
    CHAINS_FAILED,
    CHAINS_CANCELLED,
    ATTEMPT_DURATION,
    QUEUE_LATENCY,
    CHAIN_DURATION,
    JOBS,
)
"""Every metric queuert records, as documented in docs/observability.md."""


class Instruments:
    """The instruments of :data:`METRICS`, made on one meter."""

    def __init__(self, meter: Meter, *, job_counts: CallbackT) -> None:
        def counter(spec: MetricSpec) -> Counter:
            return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)

        def histogram(spec: MetricSpec) -> Histogram:
            return meter.create_histogram(spec.name, unit=spec.unit, description=spec.description)

        self.jobs_created = counter(JOBS_CREATED)
        self.attempts_started = counter(ATTEMPTS_STARTED)
        self.attempts_completed = counter(ATTEMPTS_COMPLETED)
        self.attempts_failed = counter(ATTEMPTS_FAILED)
        self.leases_expired = counter(LEASES_EXPIRED)
        self.leases_renewed = counter(LEASES_RENEWED)
        self.chains_completed = counter(CHAINS_COMPLETED)
        self.chains_failed = counter(CHAINS_FAILED)
        self.chains_cancelled = counter(CHAINS_CANCELLED)
        self.attempt_duration = histogram(ATTEMPT_DURATION)
        self.queue_latency = histogram(QUEUE_LATENCY)
        self.chain_duration = histogram(CHAIN_DURATION)
        self.jobs: ObservableGauge = meter.create_observable_gauge(
            JOBS.name, callbacks=[job_counts], unit=JOBS.unit, description=JOBS.description
        )
