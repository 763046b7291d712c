"""Type-checked against mypy by tests/test_typing.py; lines marked with E must fail."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

import queuert


@dataclass
class ImageInput:
    image_id: int


@dataclass
class DistributeInput:
    image_id: int
    row_id: int


@dataclass
class Done:
    done: bool


image_chain = queuert.chain("image", input=ImageInput, output=Done)
distribute = image_chain.queue("distribute", input=DistributeInput)
other_chain = queuert.chain("other", input=ImageInput, output=str)
other_step = other_chain.queue("step", input=DistributeInput)


def register(worker: queuert.Worker[aiosqlite.Connection]) -> None:
    @worker.handler(image_chain)
    async def process(
        job: queuert.Job[ImageInput], ctx: queuert.JobContext[aiosqlite.Connection, Done]
    ) -> Done | queuert.Continuation:
        image_id: int = job.input.image_id

        async def good(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done | queuert.Continuation:
            return await enqueue_job(distribute, DistributeInput(image_id, 1))

        async def wrong_input(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done | queuert.Continuation:
            return await enqueue_job(distribute, ImageInput(image_id))  # E: wrong continuation input `ImageInput` `DistributeInput`

        async def other_chains_queue(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done | queuert.Continuation:
            return await enqueue_job(other_step, DistributeInput(1, 2))  # E: queue of another chain

        await ctx.finalize(good)
        await ctx.finalize(wrong_input)
        return await ctx.finalize(other_chains_queue)

    @worker.handler(distribute)
    async def finish(
        job: queuert.Job[DistributeInput], ctx: queuert.JobContext[aiosqlite.Connection, Done]
    ) -> Done | queuert.Continuation:
        async def wrong_output(tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]) -> str:
            return "not done"

        async def right_output(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Done]
        ) -> Done:
            return Done(True)

        await ctx.finalize(right_output)
        return await ctx.finalize(wrong_output)  # E: finalize returning the wrong output type `str`

    @worker.handler(other_step)
    async def only_completes(
        job: queuert.Job[DistributeInput], ctx: queuert.JobContext[aiosqlite.Connection, str]
    ) -> str:
        # A handler that only completes is annotated with the chain's output type alone.
        async def commit(tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[str]) -> str:
            return "done"

        return await ctx.finalize(commit)

    @worker.handler(other_chain)
    async def only_continues(
        job: queuert.Job[ImageInput], ctx: queuert.JobContext[aiosqlite.Connection, str]
    ) -> queuert.Continuation:
        async def commit(
            tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[str]
        ) -> queuert.Continuation:
            return await enqueue_job(other_step, DistributeInput(1, 2))

        return await ctx.finalize(commit)


async def start(app: queuert.Queuert[aiosqlite.Connection], tx: aiosqlite.Connection) -> None:
    await app.enqueue_job_chain(tx, image_chain, ImageInput(1))
    await app.enqueue_job_chain(tx, image_chain, DistributeInput(1, 2))  # E: wrong chain input `DistributeInput` `ImageInput`
    await app.enqueue_job_chains(tx, image_chain, [DistributeInput(1, 2)])  # E: `DistributeInput` `ImageInput`
    handle = await app.enqueue_job_chain(tx, image_chain, ImageInput(2))
    output: Done = await app.wait_for_chain(handle)
    wrong: str = await app.wait_for_chain(handle)  # E: chain output is Done, not str
    del output, wrong
