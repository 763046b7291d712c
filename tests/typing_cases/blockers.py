"""Type-checked against mypy by tests/test_typing.py; lines marked with E must fail.

A fan-in handler reads its blockers' outputs typed as the outputs of their chains."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import aiosqlite

import queuert


@dataclass
class Resize:
    size: int


@dataclass
class Resized:
    path: str


@dataclass
class Image:
    image_id: int


@dataclass
class Published:
    paths: list[str]


resize_chain = queuert.chain("resize", input=Resize, output=Resized)
image_chain = queuert.chain("image", input=Image, output=Published)
publish = image_chain.queue("publish", input=Image)


def register(worker: queuert.Worker[aiosqlite.Connection]) -> None:
    @worker.handler(publish)
    async def fan_in(
        job: queuert.Job[Image], ctx: queuert.JobContext[aiosqlite.Connection, Published]
    ) -> Published:
        blockers = await ctx.blockers()
        first: Resized = blockers[0].output(resize_chain)
        wrong: Published = blockers[0].output(resize_chain)  # E: a Resized is not a Published
        sizes: list[Resized] = job.blockers.outputs(resize_chain)
        bad_sizes: list[int] = job.blockers.outputs(resize_chain)  # E: outputs are Resized
        del wrong, bad_sizes
        return Published([first.path, *(s.path for s in sizes)])


async def start(app: queuert.Queuert[aiosqlite.Connection], tx: aiosqlite.Connection) -> None:
    handles = [await app.enqueue_job_chain(tx, resize_chain, Resize(n)) for n in (1, 2)]
    await app.enqueue_job_chain(tx, image_chain, Image(1), blockers=handles)

    async def fan_out(
        tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Published]
    ) -> queuert.Continuation:
        return await enqueue_job(
            publish, Image(1), blockers=handles, delay=timedelta(seconds=1)
        )

    async def wrong_delay(
        tx: aiosqlite.Connection, enqueue_job: queuert.EnqueueJob[Published]
    ) -> queuert.Continuation:
        return await enqueue_job(publish, Image(1), delay=5)  # E: delay is a timedelta

    del fan_out, wrong_delay

    def read(blockers: queuert.Blockers) -> None:
        typed: Resized = blockers.output_of(handles[0])
        mistyped: str = blockers.output_of(handles[0])  # E: the handle's output is Resized
        del typed, mistyped
