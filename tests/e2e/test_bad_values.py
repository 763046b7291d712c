"""Values that would be stored but could not be read back (DESIGN section 8): each
is refused with a named queuert error before anything is written, on every backend,
and the largest accepted values are stored and read back exactly."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import msgspec
import pydantic
import pytest
from typing_extensions import TypedDict

import queuert
from queuert import (
    ChainDef,
    ChainFailedError,
    InputValidationError,
    Job,
    JobContext,
    JobStatus,
    LeaseError,
    Queuert,
    RetryPolicy,
    ValidationError,
)
from queuert.validation import (
    EARLIEST_TIME,
    INT32_MAX,
    INT32_MIN,
    LATEST_TIME,
    MAX_DURATION_MS,
    MAX_PAYLOAD_DEPTH,
)
from tests.e2e.backends import Backend
from tests.e2e.fixtures_inprocess import job_count, make_worker, open_app


@dataclass
class Reading:
    value: float
    extra: Any = None


class Sample(pydantic.BaseModel):
    value: float | None


class Point(TypedDict):
    x: float


class Measure(msgspec.Struct):
    value: float | None


readings = queuert.chain("bad-values-readings", input=Reading, output=Reading)
samples = queuert.chain("bad-values-samples", input=Sample, output=Sample)
points = queuert.chain("bad-values-points", input=Point, output=Point)
measures = queuert.chain("bad-values-measures", input=Measure, output=Measure)
loose = queuert.chain("bad-values-loose", input=dict[str, Any], output=dict[str, Any])
untyped: ChainDef[Any, Any] = queuert.chain("bad-values-untyped", input=Any, output=Any)
wide: ChainDef[Any, Any] = queuert.chain(
    "bad-values-wide",
    input=Any,
    output=Any,
    retry=RetryPolicy(max_attempts=INT32_MAX, max_delay_ms=MAX_DURATION_MS),
    priority=INT32_MIN,
)

once: ChainDef[Any, Any] = queuert.chain(
    "bad-values-once", input=Any, output=Any, retry=RetryPolicy(max_attempts=1)
)

CHAINS: list[ChainDef[Any, Any]] = [
    readings,
    samples,
    points,
    measures,
    loose,
    untyped,
    wide,
    once,
]


async def assert_nothing_written(app: Queuert[Any]) -> None:
    assert await job_count(app) == 0
    assert (await app.list_chains()).items == []


async def refused(error: type[Exception], call: Coroutine[Any, Any, object], *shown: str) -> str:
    with pytest.raises(error) as raised:
        await call
    message = str(raised.value)
    for text in shown:
        assert text in message
    return message


def nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


# -- durations, times and integers ----------------------------------------------------------


@pytest.mark.parametrize("lease_ms", [2**53, MAX_DURATION_MS + 1, 10**30])
async def test_worker_lease_has_an_upper_bound(backend: Backend, lease_ms: int) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(LeaseError) as raised:
            app.worker(lease_ms=lease_ms)
        assert str(MAX_DURATION_MS) in str(raised.value)


async def test_longest_leases_are_stored_and_read_back(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app, lease_ms=MAX_DURATION_MS)
        refusals: list[str] = []
        leases: list[datetime | None] = []

        @worker.handler(untyped)
        async def handle(job: Job[Any], ctx: JobContext[Any, Any]) -> Any:
            leases.append((await _read(app, job.id)).leased_until)
            for call in (
                ctx.heartbeat(lease_ms=MAX_DURATION_MS + 1),
                ctx.with_heartbeat(asyncio.sleep(0), interval_ms=1_000, lease_ms=2**53),
                ctx.with_heartbeat(asyncio.sleep(0), interval_ms=MAX_DURATION_MS + 1),
            ):
                try:
                    await call
                except LeaseError as exc:
                    refusals.append(str(exc))
            await ctx.heartbeat(lease_ms=MAX_DURATION_MS)
            leases.append((await _read(app, job.id)).leased_until)
            return await ctx.complete("done")

        async with worker:
            handle_ = await app.enqueue_job_chain(None, untyped, 1)
            assert await app.wait_for_chain(handle_, timeout=5.0) == "done"

        assert len(refusals) == 3
        assert all(str(MAX_DURATION_MS) in message for message in refusals)
        century = datetime.now(UTC) + timedelta(days=365 * 99)
        assert all(lease is not None and lease > century for lease in leases)


async def _read(app: Queuert[Any], job_id: str) -> queuert.JobRecord:
    record = await app.get_job(job_id)
    assert record is not None
    return record


BEYOND_STORAGE: list[tuple[dict[str, Any], str]] = [
    ({"delay": timedelta(days=365 * 101)}, "delay"),
    ({"delay": timedelta.max}, "delay"),
    ({"start_at": datetime(9999, 6, 1, tzinfo=UTC)}, "start_at"),
    ({"start_at": datetime.max.replace(tzinfo=UTC)}, "start_at"),
    # Before year 9999 where it is written, after it in UTC.
    ({"start_at": datetime(9998, 12, 31, 23, tzinfo=timezone(timedelta(hours=-23)))}, "start_at"),
    # Before year 1 in UTC: Python cannot even convert it.
    ({"start_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}, "start_at"),
    ({"start_at": datetime(1969, 12, 31, tzinfo=UTC)}, "start_at"),
    ({"priority": 2**31}, str(2**31)),
    ({"priority": -(2**31) - 1}, str(-(2**31) - 1)),
    ({"priority": 2**63}, str(2**63)),
    ({"priority": True}, "True"),
]


@pytest.mark.parametrize(("options", "shown"), BEYOND_STORAGE)
async def test_schedule_and_priority_beyond_storage_are_refused(
    backend: Backend, options: dict[str, Any], shown: str
) -> None:
    async with open_app(backend, CHAINS) as app:
        await refused(ValidationError, app.enqueue_job_chain(None, untyped, 1, **options), shown)
        await assert_nothing_written(app)


async def test_extreme_accepted_values_read_back_exactly(backend: Backend) -> None:
    latest = LATEST_TIME - timedelta(microseconds=1)
    async with open_app(backend, CHAINS) as app:
        late = await app.enqueue_job_chain(None, wide, 1, start_at=latest)
        early = await app.enqueue_job_chain(None, wide, 2, start_at=EARLIEST_TIME)
        top = await app.enqueue_job_chain(None, wide, 3, priority=INT32_MAX)
        far = await app.enqueue_job_chain(
            None, wide, 4, delay=timedelta(milliseconds=MAX_DURATION_MS)
        )
        late_job, early_job = await _read(app, late.id), await _read(app, early.id)
        top_job, far_job = await _read(app, top.id), await _read(app, far.id)
    assert late_job.scheduled_at == latest
    assert early_job.scheduled_at == EARLIEST_TIME
    assert late_job.max_attempts == INT32_MAX
    assert late_job.priority == INT32_MIN
    assert top_job.priority == INT32_MAX
    assert far_job.scheduled_at > datetime.now(UTC) + timedelta(days=365 * 99)


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 2**31},
        {"max_attempts": 1.5},
        {"initial_delay_ms": math.nan},
        {"initial_delay_ms": -1},
        {"max_delay_ms": MAX_DURATION_MS + 1},
        {"max_delay_ms": math.inf},
        {"multiplier": math.nan},
        {"multiplier": math.inf},
        {"multiplier": 1e300},
        {"jitter": math.nan},
        {"jitter": -0.1},
    ],
)
def test_retry_policy_refuses_values_it_cannot_use(options: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as raised:
        RetryPolicy(**options)
    [name] = options
    assert name in str(raised.value)


def test_retry_delay_does_not_overflow() -> None:
    policy = RetryPolicy(max_attempts=INT32_MAX, multiplier=1e6, max_delay_ms=MAX_DURATION_MS)
    assert policy.delay_ms(INT32_MAX, rand=lambda: 0.5) == MAX_DURATION_MS
    assert RetryPolicy(multiplier=1e6).delay_ms(200, rand=lambda: 0.5) == 300_000


def test_definitions_refuse_priorities_beyond_storage() -> None:
    with pytest.raises(ValidationError, match=str(2**31)):
        queuert.chain("bad-values-high", input=int, output=int, priority=2**31)
    with pytest.raises(ValidationError, match=str(2**40)):
        readings.queue("too-high", input=int, priority=2**40)


@pytest.mark.parametrize("worker_id", ["w\x00", "w\ud800", "", "w" * 10_000])
async def test_worker_id_that_cannot_be_stored(backend: Backend, worker_id: str) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(ValidationError) as raised:
            app.worker(worker_id=worker_id)
        assert "worker_id" in str(raised.value)
        assert len(str(raised.value)) < 1_000


# -- payloads ----------------------------------------------------------------------------------


NOT_STORABLE: list[tuple[ChainDef[Any, Any], Any, str]] = [
    (readings, Reading(math.nan), "nan"),
    (readings, Reading(1.0, math.inf), "inf"),
    (readings, Reading(1.0, {"deep": [-math.inf]}), "-inf"),
    (samples, Sample(value=math.nan), "nan"),
    (samples, Sample(value=math.inf), "inf"),
    (points, {"x": math.nan}, "nan"),
    (measures, Measure(value=math.inf), "inf"),
    (loose, {"a": math.nan}, "nan"),
    (untyped, {"a": math.nan}, "nan"),
    (untyped, {"text": "\ud800"}, "surrogate"),
    (loose, {"text": "\udfff"}, "surrogate"),
    (readings, Reading(1.0, "\ud800"), "surrogate"),
    (untyped, nested(MAX_PAYLOAD_DEPTH + 1), str(MAX_PAYLOAD_DEPTH)),
    (untyped, nested(5_000), str(MAX_PAYLOAD_DEPTH)),
    (loose, {"deep": nested(300)}, "deep"),
    (readings, Reading(1.0, nested(300)), "Reading"),
    (untyped, {1: "one"}, "not a string"),
    (untyped, {1: "a", "1": "b"}, "not a string"),
    (untyped, [{("a", 1): 1}], "not a string"),
]


@pytest.mark.parametrize(("chain", "value", "shown"), NOT_STORABLE)
async def test_payloads_that_would_not_read_back_are_refused(
    backend: Backend, chain: ChainDef[Any, Any], value: Any, shown: str
) -> None:
    async with open_app(backend, CHAINS) as app:
        await refused(InputValidationError, app.enqueue_job_chain(None, chain, value), shown)
        await assert_nothing_written(app)


async def test_deepest_untyped_payload_reads_back(backend: Backend) -> None:
    value = nested(MAX_PAYLOAD_DEPTH - 1)
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)

        @worker.handler(untyped)
        async def handle(job: Job[Any], ctx: JobContext[Any, Any]) -> Any:
            return await ctx.complete(job.input)

        async with worker:
            handle_ = await app.enqueue_job_chain(None, untyped, value)
            assert await app.wait_for_chain(handle_, timeout=5.0) == value


async def test_output_that_would_not_read_back_fails_the_job(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)

        @worker.handler(once)
        async def handle(job: Job[Any], ctx: JobContext[Any, Any]) -> Any:
            return await ctx.complete(nested(300))

        async with worker:
            handle_ = await app.enqueue_job_chain(None, once, 1)
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)
        job = await _read(app, handle_.id)
        assert job.status is JobStatus.FAILED and job.output is None
        assert job.error is not None
        assert job.error.type == "queuert.errors.InputValidationError"


async def test_messages_quote_a_bounded_prefix(backend: Backend) -> None:
    huge = "x" * 20_000_000
    async with open_app(backend, CHAINS) as app:
        calls: list[Coroutine[Any, Any, object]] = [
            app.enqueue_job_chain(None, readings, cast(Reading, {"value": huge})),
            app.enqueue_job_chain(None, readings, Reading(cast(float, huge))),
            app.enqueue_job_chain(None, untyped, {"big": huge, "bad": math.nan}),
            app.enqueue_job_chain(None, untyped, {"big": huge, 2: "two"}),
        ]
        for call in calls:
            message = await refused(InputValidationError, call, "xxxx")
            assert len(message) < 2_000
        for call in (app.get_job(huge), app.delete_chains([huge])):
            message = await refused(ValidationError, call, "xxxx")
            assert len(message) < 2_000
        await assert_nothing_written(app)
    with pytest.raises(ValidationError) as raised:
        queuert.chain(huge, input=int, output=int)
    assert len(str(raised.value)) < 2_000


# -- names, ids and collections --------------------------------------------------------------


@pytest.mark.parametrize("name", ["photos\n", "photos\n\n", "\nphotos", "pho\ntos"])
def test_names_refuse_newlines(name: str) -> None:
    with pytest.raises(ValidationError):
        queuert.chain(name, input=int, output=int)
    with pytest.raises(ValidationError):
        readings.queue(name, input=int)


async def test_a_bare_string_is_not_a_list(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        kept = await app.enqueue_job_chain(None, untyped, 1)
        await refused(ValidationError, app.delete_chains(kept.id), "chain_ids")
        await refused(ValidationError, app.delete_chains(cast(Any, None)), "chain_ids")
        await refused(ValidationError, app.enqueue_job_chains(None, untyped, "abc"), "'abc'")
        await refused(ValidationError, app.enqueue_job_chains(None, untyped, cast(Any, {"a": 1})))
        assert await job_count(app) == 1
        assert await app.get_chain(kept.id) is not None


@pytest.mark.parametrize("bad", ["job\x00id", "job\ud800", "", 42, None])
async def test_ids_that_cannot_be_stored(backend: Backend, bad: Any) -> None:
    async with open_app(backend, CHAINS) as app:
        calls: list[Callable[[], Coroutine[Any, Any, object]]] = [
            lambda: app.get_job(bad),
            lambda: app.get_chain(bad),
            lambda: app.cancel_chain(bad),
            lambda: app.delete_chains([bad]),
        ]
        if bad is not None:  # None means "no filter" here
            calls += [
                lambda: app.list_jobs(chain_id=bad),
                lambda: app.list_jobs(after=bad),
                lambda: app.list_chains(after=bad),
            ]
        for call in calls:
            await refused(ValidationError, call(), repr(bad)[:5])


# -- waiting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"poll_interval": 0},
        {"poll_interval": -1},
        {"poll_interval": math.nan},
        {"poll_interval": math.inf},
        {"timeout": math.nan},
        {"timeout": -1},
        {"timeout": 0},
        {"timeout": "soon"},
    ],
)
async def test_wait_for_chain_validates_timing(backend: Backend, options: dict[str, Any]) -> None:
    options.setdefault("timeout", 0.5)
    async with open_app(backend, CHAINS) as app:
        handle_ = await app.enqueue_job_chain(None, untyped, 1)
        # A guard against the unvalidated call waiting forever: it must fail at once.
        async with asyncio.timeout(5):
            with pytest.raises(ValidationError) as raised:
                await app.wait_for_chain(handle_, **options)
        [name] = [key for key in options if key in str(raised.value)][:1] or ["?"]
        assert name in options


async def test_reads_refuse_filters_of_the_wrong_type(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        for call in (
            app.list_jobs(queue=cast(Any, 5)),
            app.list_jobs(status=cast(Any, 5)),
            app.list_jobs(status=cast(Any, [[]])),
            app.list_jobs(queue=["bad-values-untyped\x00"]),
            app.list_chains(chain=cast(Any, 5)),
        ):
            await refused(ValidationError, call)


@pytest.mark.parametrize(
    "options",
    [
        {"poll_interval": math.nan},
        {"poll_interval": math.inf},
        {"reaper_interval": math.nan},
        {"reaper_interval": -1.0},
    ],
)
async def test_worker_intervals_must_be_finite(backend: Backend, options: dict[str, Any]) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(ValidationError) as raised:
            app.worker(**options)
        [name] = options
        assert name in str(raised.value)


async def test_reschedule_beyond_storage_is_refused(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)
        refusals: list[str] = []

        @worker.handler(untyped)
        async def handle(job: Job[Any], ctx: JobContext[Any, Any]) -> Any:
            for options in (
                {"after": timedelta(days=365 * 101)},
                {"after": timedelta.max},
                {"at": datetime(9999, 6, 1, tzinfo=UTC)},
                {"at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))},
            ):
                try:
                    await ctx.reschedule(**options)
                except ValidationError as exc:
                    refusals.append(str(exc))
            return await ctx.complete("kept")

        async with worker:
            handle_ = await app.enqueue_job_chain(None, untyped, 1)
            assert await app.wait_for_chain(handle_, timeout=5.0) == "kept"
        assert len(refusals) == 4
        job = await _read(app, handle_.id)
        assert job.attempt == 1


HUGE_INT = 10**5000  # too large for a float, and for repr() with Python's default limit


@pytest.mark.parametrize(
    "make",
    [
        lambda: queuert.RetryPolicy(multiplier=HUGE_INT),
        lambda: queuert.RetryPolicy(max_attempts=HUGE_INT),
        lambda: queuert.chain("bad-values-p", input=Any, output=Any, priority=HUGE_INT),
        lambda: queuert.chain("bad-values-t", input=cast(Any, {"a": 1}), output=Any),
        lambda: queuert.chain("bad-values-t", input=cast(Any, "\ud800"), output=Any),
        lambda: queuert.chain("bad-values-t", input=cast(Any, "\x00"), output=Any),
        lambda: Queuert(state=queuert.MemoryStateAdapter(), chains=cast(Any, 5)),
        lambda: Queuert(state=queuert.MemoryStateAdapter(), chains=cast(Any, None)),
    ],
)
def test_definitions_raise_named_errors_only(make: Callable[[], object]) -> None:
    with pytest.raises(ValidationError) as raised:
        make()
    assert len(str(raised.value)) < 2_000


@pytest.mark.parametrize(
    "options",
    [
        {"poll_interval": HUGE_INT},
        {"concurrency": HUGE_INT * -1},
        {"queues": 5},
        {"queues": "bad-values-untyped"},
        {"queues": [1]},
    ],
)
async def test_worker_options_raise_named_errors_only(
    backend: Backend, options: dict[str, Any]
) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(ValidationError) as raised:
            app.worker(**options)
        assert len(str(raised.value)) < 2_000


async def test_wait_for_chain_refuses_a_timeout_too_large_for_a_float(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        handle_ = await app.enqueue_job_chain(None, untyped, 1)
        with pytest.raises(ValidationError, match="timeout"):
            await app.wait_for_chain(handle_, timeout=HUGE_INT)
