"""The shop's chains, handlers and tasks, as a Django project would write them."""

from __future__ import annotations

# --8<-- [start:chains]
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.tasks import TaskContext, task

import queuert
import queuert_django
from tests.django.project.shop.models import Image


@dataclass
class ImageInput:
    image_id: int


@dataclass
class ImageDone:
    image_id: int
    name: str


image_chain = queuert.chain("process-image", input=ImageInput, output=ImageDone)

chains = [image_chain]  # QUEUERT["CHAINS"] names this list
# --8<-- [end:chains]


# --8<-- [start:upload]
def upload(name: str) -> tuple[Image, str]:
    """A view's work: the image row and its chain commit together, or neither does."""
    with transaction.atomic():
        image = Image.objects.create(name=name)
        handle = queuert_django.enqueue_job_chain(image_chain, ImageInput(image_id=image.pk))
    # Committed: the chain exists, and a worker was woken through on_commit.
    return image, handle.id


# --8<-- [end:upload]


# --8<-- [start:worker]
async def process_image(
    job: queuert.Job[ImageInput], ctx: queuert.JobContext[Any, ImageDone]
) -> ImageDone:
    # Handlers are coroutines: they use Django's asynchronous ORM methods.
    image = await Image.objects.aget(pk=job.input.image_id)
    image.processed = True
    await image.asave(update_fields=["processed"])
    return await ctx.complete(ImageDone(image_id=image.pk, name=image.name))


async def worker() -> queuert.Worker[Any]:
    """QUEUERT["WORKER"]: what `python manage.py queuert worker` runs."""
    app = await queuert_django.connect()  # the database of QUEUERT["DATABASE"]
    running = queuert_django.worker(app, concurrency=4)  # runs django.tasks tasks too
    running.handler(image_chain)(process_image)
    return running


# --8<-- [end:worker]


# --8<-- [start:tasks]
@task
def add(a: int, b: int) -> int:
    return a + b


@task(priority=10)
def rename(image_id: int, name: str) -> str:
    Image.objects.filter(pk=image_id).update(name=name)  # a synchronous task uses the ORM
    return name


# --8<-- [end:tasks]


@task
def explode() -> None:
    raise ValueError("boom")


@task(takes_context=True)
def which_attempt(context: TaskContext[[], list[Any]]) -> list[Any]:
    return [context.attempt, context.task_result.id]
