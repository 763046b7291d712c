"""queuert for Django: chains started inside ``transaction.atomic()``, the
``queuert`` management command, queuert's tables through Django's migrations, and
a ``django.tasks`` backend::

    with transaction.atomic():
        image = Image.objects.create(name="cat.png")
        queuert_django.enqueue_job_chain(image_chain, ImageInput(image_id=image.pk))
    # the chain exists, and a worker is woken, exactly when the block commits

The public API is what this module exports. Settings: :mod:`queuert_django.conf`.
"""

from queuert_django.application import connect, tasks_worker, worker
from queuert_django.calls import (
    cancel_chain,
    enqueue_job_chain,
    enqueue_job_chains,
    get_chain,
    retry_chain,
)
from queuert_django.database import notify_url, state_url

__all__ = [
    "cancel_chain",
    "connect",
    "enqueue_job_chain",
    "enqueue_job_chains",
    "get_chain",
    "notify_url",
    "retry_chain",
    "state_url",
    "tasks_worker",
    "worker",
]
