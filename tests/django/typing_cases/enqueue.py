"""Type-checked by tests/django/test_typing.py; lines marked with E must fail."""

from __future__ import annotations

import queuert_django
from tests.django.project.shop.jobs import ImageDone, ImageInput, image_chain


def start() -> None:
    queuert_django.enqueue_job_chain(image_chain, ImageInput(image_id=1))
    queuert_django.enqueue_job_chains(image_chain, [ImageInput(image_id=1)])
    queuert_django.enqueue_job_chain(image_chain, ImageDone(1, "x"))  # E: `ImageDone` `ImageInput`
    queuert_django.enqueue_job_chains(image_chain, [ImageDone(1, "x")])  # E: `ImageInput`
