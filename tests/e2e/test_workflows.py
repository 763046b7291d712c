"""Workflows on every backend: fan-out from a finalize, fan-in on blockers,
failing blockers, deleting chains others wait on, delayed continuations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

import queuert
from tests.e2e.backends import Backend


@dataclass
class Image:
    image_id: int
    fail_size: int | None = None


@dataclass
class Resize:
    image_id: int
    size: int


@dataclass
class Resized:
    size: int
    path: str


@dataclass
class Publish:
    image_id: int


@dataclass
class Published:
    paths: list[str]


resize_chain = queuert.chain("wf-resize", input=Resize, output=Resized)
image_chain = queuert.chain("wf-image", input=Image, output=Published)
publish = image_chain.queue("publish", input=Publish)
gallery_chain = queuert.chain(
    "wf-gallery", input=Publish, output=Published, on_blocker_failure="run"
)
SIZES = (64, 256, 1024)


def pipeline(
    backend: Backend, *, crash_first_finalize: bool = False
) -> tuple[queuert.Queuert[Any], queuert.Worker[Any], dict[int, int]]:
    """The image pipeline; the returned dict maps an image id to the size whose
    resize fails."""
    app = queuert.Queuert(
        state=backend.state,
        notify=queuert.InProcessNotifyAdapter(),
        chains=[image_chain, resize_chain, gallery_chain],
    )
    worker = app.worker(concurrency=4, poll_interval=0.1)
    crashes = {"left": 1 if crash_first_finalize else 0}
    failing: dict[int, int] = {}

    @worker.handler(image_chain)
    async def fan_out(job: queuert.Job[Image], ctx: queuert.JobContext[Any, Published]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Published]) -> Any:
            handles = [
                await app.enqueue_job_chain(tx, resize_chain, Resize(job.input.image_id, size))
                for size in SIZES
            ]
            await backend.app_write(tx, f"fan-out-{job.input.image_id}")
            if crashes["left"]:
                crashes["left"] -= 1
                raise RuntimeError("crash before the finalize commits")
            return await enqueue_job(publish, Publish(job.input.image_id), blockers=handles)

        return await ctx.finalize(commit)

    @worker.handler(resize_chain)
    async def resize(job: queuert.Job[Resize], ctx: queuert.JobContext[Any, Resized]) -> Any:
        assert len(job.blockers) == 0  # a job created without blockers
        if job.input.size == failing.get(job.input.image_id):
            raise queuert.NonRetryableError("cannot resize")
        return Resized(job.input.size, f"/img/{job.input.image_id}/{job.input.size}.png")

    @worker.handler(publish)
    async def fan_in(job: queuert.Job[Publish], ctx: queuert.JobContext[Any, Published]) -> Any:
        sizes: list[Resized] = job.blockers.outputs(resize_chain)
        assert [b.chain_id for b in job.blockers] == [b.chain_id for b in await ctx.blockers()]
        return Published([r.path for r in sizes])

    @worker.handler(gallery_chain)
    async def gallery(job: queuert.Job[Publish], ctx: queuert.JobContext[Any, Published]) -> Any:
        blockers = job.blockers
        assert [b.status for b in blockers] == [b.status for b in await ctx.blockers()]
        return Published(
            [
                b.output(resize_chain).path
                if b.status is queuert.JobStatus.COMPLETED
                else f"missing: {b.status.value}"
                for b in blockers
            ]
        )

    return app, worker, failing


async def test_fan_out_then_fan_in_reads_the_outputs_in_order(backend: Backend) -> None:
    app, worker, _ = pipeline(backend)
    async with worker:
        handles = await app.enqueue_job_chains(None, image_chain, [Image(1), Image(2)])
        outputs = [await app.wait_for_chain(h, timeout=30) for h in handles]
    assert [o.paths for o in outputs] == [
        [f"/img/{i}/{size}.png" for size in SIZES] for i in (1, 2)
    ]
    resizes = await app.list_chains(chain=resize_chain)
    assert len(resizes.items) == 6
    assert all(c.status is queuert.JobStatus.COMPLETED for c in resizes.items)


async def test_a_crashed_finalize_starts_no_chain_and_its_retry_starts_them_once(
    backend: Backend,
) -> None:
    app, worker, _ = pipeline(backend, crash_first_finalize=True)
    async with worker:
        handle = await app.enqueue_job_chain(None, image_chain, Image(7))
        output = await app.wait_for_chain(handle, timeout=30)
    assert len(output.paths) == 3
    resizes = await app.list_chains(chain=resize_chain)
    assert len(resizes.items) == len(SIZES)
    assert (await backend.app_writes())["fan-out-7"] == 1


async def test_a_failed_blocker_fails_the_waiting_chain(backend: Backend) -> None:
    app, worker, failing = pipeline(backend)
    failing[3] = 256
    async with worker:
        handle = await app.enqueue_job_chain(None, image_chain, Image(3))
        with pytest.raises(queuert.ChainFailedError) as caught:
            await app.wait_for_chain(handle, timeout=30)
    error = caught.value.error
    assert isinstance(error, queuert.JobError)
    assert error.type == "queuert.errors.BlockerFailedError"
    chain = await app.get_chain(handle.id)
    assert chain is not None and chain.status is queuert.JobStatus.FAILED
    assert chain.last_queue == publish.name


async def test_blockers_from_outside_a_worker_and_deleting_what_others_wait_on(
    backend: Backend,
) -> None:
    app, _, _ = pipeline(backend)
    blocker = await app.enqueue_job_chain(None, resize_chain, Resize(9, 64))
    waiting = await app.enqueue_job_chain(None, image_chain, Image(9), blockers=[blocker])
    job = await app.get_job(waiting.id)
    assert job is not None and job.status is queuert.JobStatus.BLOCKED
    with pytest.raises(queuert.ChainHasDependentsError, match=waiting.id):
        await app.delete_chains([blocker.id])
    assert await app.get_chain(blocker.id) is not None
    assert await app.delete_chains([blocker.id], cascade=True) == 2
    assert await app.get_chain(waiting.id) is None


async def test_blocker_input_is_validated_before_anything_is_written(backend: Backend) -> None:
    app, _, _ = pipeline(backend)
    blocker = await app.enqueue_job_chain(None, resize_chain, Resize(5, 64))
    with pytest.raises(queuert.BlockerLimitExceededError, match="101"):
        await app.enqueue_job_chain(None, image_chain, Image(5), blockers=[blocker] * 101)
    with pytest.raises(queuert.ValidationError, match="ChainHandle"):
        ids: Any = [blocker.id]  # what an untyped caller might pass
        await app.enqueue_job_chain(None, image_chain, Image(5), blockers=ids)
    with pytest.raises(queuert.JobNotFoundError):
        await app.enqueue_job_chain(
            None,
            image_chain,
            Image(5),
            blockers=[queuert.ChainHandle("0" * 26, resize_chain)],
        )
    assert (await app.list_chains(chain=image_chain)).items == []
    waiting = await app.enqueue_job_chain(None, image_chain, Image(5), blockers=[blocker] * 100)
    assert len(await app.state.get_blockers(tx=None, job_id=waiting.id)) == 100


later = image_chain.queue("later", input=Publish)


async def test_a_delayed_continuation_is_scheduled_later_and_runs(backend: Backend) -> None:
    app = queuert.Queuert(
        state=backend.state, notify=queuert.InProcessNotifyAdapter(), chains=[image_chain]
    )
    worker = app.worker(concurrency=2, poll_interval=5.0)
    delay = timedelta(milliseconds=300)

    @worker.handler(image_chain)
    async def first(job: queuert.Job[Image], ctx: queuert.JobContext[Any, Published]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Published]) -> Any:
            return await enqueue_job(later, Publish(job.input.image_id), delay=delay)

        return await ctx.finalize(commit)

    @worker.handler(later)
    async def second(job: queuert.Job[Publish], ctx: queuert.JobContext[Any, Published]) -> Any:
        return Published([f"later-{job.input.image_id}"])

    async with worker:
        handle = await app.enqueue_job_chain(None, image_chain, Image(4))
        # The worker polls every 5 s: finishing sooner means it woke when the job was due.
        output = await app.wait_for_chain(handle, timeout=4)
    assert output.paths == ["later-4"]
    first_job = await app.get_job(handle.id)
    assert first_job is not None and first_job.next_job_id is not None
    second_job = await app.get_job(first_job.next_job_id)
    assert second_job is not None and first_job.completed_at is not None
    assert second_job.scheduled_at >= first_job.completed_at + delay - timedelta(milliseconds=5)


async def test_a_continuation_takes_delay_or_start_at_not_both(backend: Backend) -> None:
    app = queuert.Queuert(state=backend.state, chains=[image_chain])
    worker = app.worker(concurrency=1, poll_interval=0.1)
    seen: list[BaseException] = []

    @worker.handler(image_chain)
    async def first(job: queuert.Job[Image], ctx: queuert.JobContext[Any, Published]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Published]) -> Any:
            try:
                await enqueue_job(later, Publish(1), delay=timedelta(seconds=-1))
            except queuert.ValidationError as exc:
                seen.append(exc)
            return Published([])

        return await ctx.finalize(commit)

    async with worker:
        handle = await app.enqueue_job_chain(None, image_chain, Image(1))
        await app.wait_for_chain(handle, timeout=30)
    assert len(seen) == 1 and "delay" in str(seen[0])


async def test_a_chain_that_runs_however_reads_which_blockers_completed(backend: Backend) -> None:
    app, worker, failing = pipeline(backend)
    failing[8] = 256
    async with worker:
        resizes = await app.enqueue_job_chains(
            None, resize_chain, [Resize(8, 64), Resize(8, 256), Resize(8, 1024)]
        )
        handle = await app.enqueue_job_chain(None, gallery_chain, Publish(8), blockers=resizes)
        output = await app.wait_for_chain(handle, timeout=30)
    assert output.paths == ["/img/8/64.png", "missing: failed", "/img/8/1024.png"]


fan_chain = queuert.chain("wf-fan", input=Image, output=Published)


async def test_chains_started_in_a_finalize_wake_workers_once_it_commits(
    backend: Backend,
) -> None:
    app = queuert.Queuert(
        state=backend.state,
        notify=queuert.InProcessNotifyAdapter(),
        chains=[fan_chain, resize_chain],
    )
    # Polling every 5 s: finishing within 4 s means the workers were woken.
    worker = app.worker(concurrency=4, poll_interval=5.0)
    started: list[queuert.ChainHandle[Resized]] = []

    @worker.handler(fan_chain)
    async def fan(job: queuert.Job[Image], ctx: queuert.JobContext[Any, Published]) -> Any:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Published]) -> Published:
            for size in SIZES:
                started.append(await app.enqueue_job_chain(tx, resize_chain, Resize(1, size)))
            return Published([])

        return await ctx.finalize(commit)

    @worker.handler(resize_chain)
    async def resize(job: queuert.Job[Resize], ctx: queuert.JobContext[Any, Resized]) -> Any:
        return Resized(job.input.size, "done")

    async with worker:
        handle = await app.enqueue_job_chain(None, fan_chain, Image(1))
        await app.wait_for_chain(handle, timeout=4)
        outputs = [await app.wait_for_chain(h, timeout=4) for h in started]
    assert [o.size for o in outputs] == list(SIZES)
