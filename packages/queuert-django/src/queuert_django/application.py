"""The queuert application of a Django project, for its workers: the state adapter
on the database of ``QUEUERT["DATABASE"]``, the notifier of ``QUEUERT["NOTIFY"]``,
and the chains that run ``django.tasks`` tasks.

A project's ``QUEUERT["WORKER"]`` names a function that builds its worker::

    async def worker() -> queuert.Worker[Any]:
        app = await queuert_django.connect()  # the chains of QUEUERT["CHAINS"]
        worker = queuert_django.worker(app, concurrency=10)
        worker.handler(image_chain)(process_image)
        return worker

``manage.py queuert worker`` runs it (with the command's options applied).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from queuert.client import Queuert
from queuert.definitions import ChainDef
from queuert.worker import Worker
from queuert_django import database
from queuert_django.conf import config
from queuert_django.registry import project_chains
from queuert_django.task_chains import register_task_handlers, task_chains


async def connect(*, chains: Sequence[ChainDef[Any, Any]] | None = None) -> Queuert[Any]:
    """A :class:`~queuert.Queuert` application on the project's database, with
    ``chains`` (default: those of ``QUEUERT["CHAINS"]``) and the chains of the
    ``django.tasks`` queues of every :class:`~queuert_django.tasks.QueuertBackend` in
    ``TASKS``. Close it with
    ``await app.close()`` (a worker closes the application it ran when it stops
    under ``manage.py queuert worker``).

    Raises :class:`~queuert.ConfigurationError` for a bad ``QUEUERT`` setting, a
    database queuert does not run on, or an adapter that is not installed
    (``queuert-postgres`` or ``queuert-sqlite``)."""
    cfg = config()
    registered = project_chains() if chains is None else [*chains]
    for chain in task_chains():
        if chain not in registered:
            registered.append(chain)
    return await Queuert.from_url(
        chains=registered,
        state=database.state_url(cfg=cfg),
        notify=database.notify_url(cfg) or "none",
    )


def worker(app: Queuert[Any], **options: Any) -> Worker[Any]:
    """``app.worker(**options)`` with the handlers of the ``django.tasks`` queues
    registered: register the project's own handlers on it."""
    running = app.worker(**options)
    register_task_handlers(running)
    return running


async def tasks_worker() -> Worker[Any]:
    """The worker ``manage.py queuert worker`` runs when ``QUEUERT["WORKER"]`` names
    none: it runs the ``django.tasks`` tasks enqueued through
    :class:`~queuert_django.tasks.QueuertBackend`."""
    return worker(await connect())
