"""The worker process: ``python -m examples.fastapi_app.worker`` (stops on SIGTERM).

The handlers read the application's rows with their own SQLAlchemy sessions; the
jobs' claim and finalize run in the queuert adapter's transactions."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

import queuert
from examples.fastapi_app import settings
from examples.fastapi_app.chains import (
    Distributed,
    DistributeInput,
    ImageInput,
    distribute,
    image_chain,
)
from examples.fastapi_app.models import Image


# --8<-- [start:worker]
def build_worker(engine: AsyncEngine, jobs: queuert.Queuert[Any]) -> queuert.Worker[Any]:
    """A worker of ``jobs`` with the image chain's handlers."""
    sessions = async_sessionmaker(engine)
    worker = jobs.worker(concurrency=4, poll_interval=0.2)

    @worker.handler(image_chain)
    async def minify(
        job: queuert.Job[ImageInput], ctx: queuert.JobContext[Any, Distributed]
    ) -> Distributed | queuert.Continuation:
        async with sessions() as session:
            image = await session.get(Image, job.input.image_id)
            assert image is not None, f"image {job.input.image_id} is missing"
            data = image.data
        digest = await asyncio.to_thread(lambda: hashlib.sha256(data).hexdigest())

        async def commit(
            tx: Any, enqueue_job: queuert.EnqueueJob[Distributed]
        ) -> queuert.Continuation:
            return await enqueue_job(distribute, DistributeInput(job.input.image_id, digest))

        return await ctx.finalize(commit)

    @worker.handler(distribute)
    async def publish(
        job: queuert.Job[DistributeInput], ctx: queuert.JobContext[Any, Distributed]
    ) -> Distributed | queuert.Continuation:
        url = f"https://cdn.example.com/{job.input.digest[:16]}.png"

        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Distributed]) -> Distributed:
            return Distributed(url=url)

        return await ctx.finalize(commit)

    return worker


# --8<-- [end:worker]


async def main() -> None:
    engine, jobs = await settings.connect(settings.database_url())
    try:
        await jobs.migrate()
        async with engine.begin() as conn:
            await conn.run_sync(Image.metadata.create_all)
        await build_worker(engine, jobs).run()
    finally:
        await jobs.close()
        await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
