"""Bad input (DESIGN section 8): every public entry point raises a named queuert
error that names the offending value, and nothing is written."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest

import queuert
from queuert import (
    ChainDef,
    ChainFailedError,
    ConfigurationError,
    Continuation,
    ContinuationError,
    EnqueueJob,
    ForeignQueueError,
    InputValidationError,
    Job,
    JobContext,
    JobStatus,
    LeaseError,
    Queuert,
    RetryPolicy,
    SchemaNotMigratedError,
    UnknownChainError,
    UnknownQueueError,
    ValidationError,
)
from tests.e2e.backends import BACKENDS, Backend
from tests.e2e.fixtures_inprocess import (
    job_count,
    make_worker,
    open_app,
    unmigrated_state,
    wait_for_event,
)


@dataclass
class Photo:
    photo_id: int


@dataclass
class Thumb:
    photo_id: int
    size: int


@dataclass
class Published:
    url: str


photos = queuert.chain(
    "e2e-bad-photos", input=Photo, output=Published, retry=RetryPolicy(max_attempts=1)
)
thumbnail = photos.queue("thumbnail", input=Thumb)
loose = queuert.chain("e2e-bad-loose", input=dict[str, Any], output=dict[str, Any])
other = queuert.chain("e2e-bad-other", input=Photo, output=Photo)
other_step = other.queue("step", input=Thumb)
unregistered = queuert.chain("e2e-bad-unregistered", input=Photo, output=Published)
unregistered_step = unregistered.queue("step", input=Thumb)

CHAINS: list[ChainDef[Any, Any]] = [photos, loose, other]


async def assert_nothing_written(app: Queuert[Any], backend: Backend) -> None:
    assert await job_count(app) == 0
    assert (await app.list_chains()).items == []
    assert await backend.app_writes() == {}


# -- starting chains ----------------------------------------------------------------


async def test_unknown_chain(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(UnknownChainError) as raised:
            await app.enqueue_job_chain(None, unregistered, Photo(1))
        assert "'e2e-bad-unregistered'" in str(raised.value)

        # Same name as a registered chain, but another definition.
        impostor = queuert.chain("e2e-bad-photos", input=Photo, output=Published)
        with pytest.raises(UnknownChainError) as raised:
            await app.enqueue_job_chains(None, impostor, [Photo(1)])
        assert "'e2e-bad-photos'" in str(raised.value)
        await assert_nothing_written(app, backend)


async def test_unknown_queue(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)
        with pytest.raises(UnknownQueueError) as raised:
            worker.handler(unregistered_step)
        assert "'e2e-bad-unregistered:step'" in str(raised.value)
        with pytest.raises(UnknownQueueError) as raised:
            make_worker(app, queues=[unregistered_step])
        assert "'e2e-bad-unregistered:step'" in str(raised.value)
        await assert_nothing_written(app, backend)


async def assert_rejected(
    error: type[Exception], call: Coroutine[Any, Any, object], *shown: str
) -> None:
    """``call`` raises ``error`` whose message contains every one of ``shown``."""
    with pytest.raises(error) as raised:
        await call
    for text in shown:
        assert text in str(raised.value)


INPUTS_OF_THE_WRONG_TYPE: list[tuple[object, str]] = [
    ({"photo_id": 1}, "{'photo_id': 1}"),
    (Photo(photo_id=cast(Any, "one")), "'one'"),
    (Photo(photo_id=cast(Any, None)), "Photo(photo_id=None)"),
    (Thumb(1, 2), "Thumb(photo_id=1, size=2)"),
    (None, "None"),
]

NOT_JSON: list[tuple[dict[str, Any], str]] = [
    ({"handle": object()}, "<object object at"),
    ({"when": asyncio.Event()}, "asyncio.locks.Event"),
    ({"callback": len}, "<built-in function len>"),
    ({"raw": b"\xff"}, "b'\\xff'"),
]

BAD_SCHEDULES: list[tuple[dict[str, Any], str]] = [
    ({"delay": timedelta(seconds=-1)}, repr(timedelta(seconds=-1))),
    ({"delay": 5}, "5"),
    ({"start_at": datetime(2030, 1, 1)}, "datetime.datetime(2030, 1, 1, 0, 0)"),
    ({"priority": "high"}, "'high'"),
    ({"delay": timedelta(seconds=1), "start_at": datetime(2030, 1, 1)}, "delay"),
]


async def test_input_that_does_not_match_its_type(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        for value, shown in INPUTS_OF_THE_WRONG_TYPE:
            # The message names the value and whose input it is.
            await assert_rejected(
                InputValidationError,
                app.enqueue_job_chain(None, photos, cast(Photo, value)),
                shown,
                "'e2e-bad-photos'",
            )
        await assert_nothing_written(app, backend)


async def test_payload_that_is_not_json_serialisable(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        for value, shown in NOT_JSON:
            await assert_rejected(
                InputValidationError, app.enqueue_job_chain(None, loose, value), shown
            )
        await assert_nothing_written(app, backend)


async def test_one_bad_input_in_a_batch_writes_none_of_it(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        await assert_rejected(
            InputValidationError,
            app.enqueue_job_chains(
                None, photos, [Photo(1), Photo(2), cast(Photo, {"photo_id": 3})]
            ),
            "{'photo_id': 3}",
        )
        await assert_nothing_written(app, backend)


async def test_bad_schedule(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        for options, shown in BAD_SCHEDULES:
            await assert_rejected(
                ValidationError, app.enqueue_job_chain(None, photos, Photo(1), **options), shown
            )
        await assert_nothing_written(app, backend)


async def test_bad_reads_are_rejected(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(ValidationError) as raised:
            await app.list_jobs(status="finished")
        assert "'finished'" in str(raised.value)
        with pytest.raises(ValidationError) as raised:
            await app.list_chains(limit=0)
        assert "0" in str(raised.value)


# -- inside a handler --------------------------------------------------------------


async def test_continuation_to_a_queue_of_another_chain(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)
        caught: list[BaseException] = []

        @worker.handler(photos)
        async def handle(job: Job[Photo], ctx: JobContext[Any, Published]) -> Published:
            async def wrong(tx: Any, enqueue_job: EnqueueJob[Published]) -> Continuation:
                await backend.app_write(tx, "before-foreign")
                continuation: Continuation = await cast(Any, enqueue_job)(
                    other_step, Thumb(job.input.photo_id, 64)
                )
                return continuation

            try:
                await ctx.finalize(wrong)
            except ForeignQueueError as exc:
                caught.append(exc)

            # The failed finalize rolled back and left the lease alone: a correct one works.
            async def right(tx: Any, enqueue_job: EnqueueJob[Published]) -> Published:
                await backend.app_write(tx, "after-foreign")
                return Published(f"/photos/{job.input.photo_id}")

            result = await ctx.finalize(right)
            assert isinstance(result, Published)
            return result

        async with worker:
            handle_ = await app.enqueue_job_chain(None, photos, Photo(7))
            assert await app.wait_for_chain(handle_, timeout=5.0) == Published("/photos/7")

        [error] = caught
        assert "'e2e-bad-other:step'" in str(error)
        assert "'e2e-bad-photos'" in str(error)
        assert await backend.app_writes() == {"after-foreign": 1}
        page = await app.list_jobs()
        assert [(j.id, j.queue) for j in page.items] == [(handle_.id, photos.name)]
        assert (await app.list_jobs(queue=other_step.name)).items == []


async def test_enqueue_job_twice_in_one_finalize(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)
        caught: list[BaseException] = []
        finished = asyncio.Event()

        @worker.handler(photos)
        async def handle(job: Job[Photo], ctx: JobContext[Any, Published]) -> Published:
            async def twice(tx: Any, enqueue_job: EnqueueJob[Published]) -> Continuation:
                await backend.app_write(tx, "twice")
                await enqueue_job(thumbnail, Thumb(job.input.photo_id, 64))
                return await enqueue_job(thumbnail, Thumb(job.input.photo_id, 128))

            try:
                await ctx.finalize(twice)
            except ContinuationError as exc:
                caught.append(exc)
            finally:
                finished.set()
            return await ctx.complete(Published("unused"))

        async with worker:
            handle_ = await app.enqueue_job_chain(None, photos, Photo(8))
            await wait_for_event(finished, what="the finalize")
            await app.wait_for_chain(handle_, timeout=5.0)

        [error] = caught
        assert "'e2e-bad-photos:thumbnail'" in str(error)
        assert await backend.app_writes() == {}
        assert (await app.list_jobs(queue=thumbnail.name)).items == []
        job = await app.get_job(handle_.id)
        assert job is not None and not job.continued


async def test_output_that_does_not_match_the_chain_fails_the_job(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app)

        @worker.handler(photos)
        async def handle(job: Job[Photo], ctx: JobContext[Any, Published]) -> Published:
            return cast(Published, {"url": "/photos/9"})

        async with worker:
            handle_ = await app.enqueue_job_chain(None, photos, Photo(9))
            with pytest.raises(ChainFailedError):
                await app.wait_for_chain(handle_, timeout=5.0)

        job = await app.get_job(handle_.id)
        assert job is not None and job.status is JobStatus.FAILED and job.output is None
        assert job.error is not None
        assert job.error.type == "queuert.errors.InputValidationError"
        assert "{'url': '/photos/9'}" in job.error.message


@pytest.mark.parametrize("lease_ms", [0, -1, -30_000, 1.5])
async def test_worker_lease_must_be_positive(backend: Backend, lease_ms: Any) -> None:
    async with open_app(backend, CHAINS) as app:
        with pytest.raises(LeaseError) as raised:
            app.worker(lease_ms=lease_ms)
        assert "lease_ms" in str(raised.value)
        assert repr(lease_ms) in str(raised.value)


async def test_heartbeat_leases_must_be_positive(backend: Backend) -> None:
    async with open_app(backend, CHAINS) as app:
        worker = make_worker(app, lease_ms=10_000)
        errors: list[tuple[str, LeaseError]] = []
        leases: list[Any] = []
        works: list[Any] = []

        @worker.handler(photos)
        async def handle(job: Job[Photo], ctx: JobContext[Any, Published]) -> Published:
            before = await app.get_job(job.id)

            async def with_heartbeat(interval_ms: int, lease_ms: int | None = None) -> None:
                work = asyncio.sleep(0)
                works.append(work)
                await ctx.with_heartbeat(work, interval_ms=interval_ms, lease_ms=lease_ms)

            attempts: list[tuple[str, Coroutine[Any, Any, object]]] = [
                ("-1", ctx.heartbeat(lease_ms=-1)),
                ("0", ctx.heartbeat(lease_ms=0)),
                ("0", with_heartbeat(0)),
                ("500", with_heartbeat(500, 500)),
                ("2000", with_heartbeat(2_000, 1_000)),
                ("-5", with_heartbeat(100, -5)),
            ]
            for shown, call in attempts:
                try:
                    await call
                except LeaseError as exc:
                    errors.append((shown, exc))
            after = await app.get_job(job.id)
            assert before is not None and after is not None
            leases.extend([before.leased_until, after.leased_until])
            return await ctx.complete(Published("ok"))

        async with worker:
            handle_ = await app.enqueue_job_chain(None, photos, Photo(1))
            await app.wait_for_chain(handle_, timeout=5.0)

        assert len(errors) == 6
        for shown, error in errors:
            assert shown in str(error)
        # The rejected calls renewed nothing, and handed-over work was not left pending.
        assert leases[0] == leases[1]
        assert all(inspect.getcoroutinestate(work) == inspect.CORO_CLOSED for work in works)


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "notify", "shown", "hidden"),
    [
        ("oracle://scott:tiger@db.example/orcl", None, "'oracle'", "tiger"),
        ("oracle://x", None, "'oracle://x'", None),
        ("not a url", None, "'not a url'", None),
        ("", None, "''", None),
        ("memory://", "carrier-pigeon://coop", "'carrier-pigeon://coop'", None),
        ("memory://", "sqlite:///jobs.db", "'sqlite'", None),
        ("sqlite:///jobs.db?bogus_option=1", None, "bogus_option", None),
    ],
)
async def test_bad_url_or_uninstalled_scheme(
    state: str, notify: str | None, shown: str, hidden: str | None
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        await Queuert.from_url(chains=CHAINS, state=state, notify=notify)
    assert shown in str(raised.value)
    if hidden is not None:
        assert hidden not in str(raised.value)
        assert "***" in str(raised.value)


@pytest.mark.parametrize("name", BACKENDS)
async def test_schema_not_migrated(name: str, tmp_path: Path) -> None:
    async with unmigrated_state(name, tmp_path) as (state, store):
        app: Queuert[Any] = queuert.Queuert(state=state, chains=CHAINS)
        worker = make_worker(app)

        @worker.handler(photos)
        async def handle(job: Job[Photo], ctx: JobContext[Any, Published]) -> Published:
            return Published("never")

        with pytest.raises(SchemaNotMigratedError) as on_start:
            await worker.start()
        with pytest.raises(SchemaNotMigratedError) as on_enqueue:
            await app.enqueue_job_chain(None, photos, Photo(1))

        for raised in (on_start, on_enqueue):
            message = str(raised.value)
            assert "migrate()" in message  # the command to run
            assert store in message  # which database or schema
        assert worker.active_jobs == 0

        await app.migrate()
        assert await job_count(app) == 0
