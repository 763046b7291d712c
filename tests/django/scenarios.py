"""Scenarios of the Django project, each run in a process of its own (Django is
configured once per process): ``python -m tests.django.scenarios NAME``, with
``DJANGO_SETTINGS_MODULE`` and ``QUEUERT_TEST_DJANGO_DB`` set. Each prints one line
of JSON with what it observed, for the test to check."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Callable
from typing import Any

import django

TIMEOUT_S = 30.0


def rolled_back() -> dict[str, Any]:
    """An atomic block that raises after enqueueing leaves neither row nor chain; one
    that commits leaves both."""
    from django.db import transaction

    import queuert_django
    from tests.django.project.shop.jobs import ImageInput, image_chain, upload
    from tests.django.project.shop.models import Image

    chain_ids: list[str] = []
    try:
        with transaction.atomic():
            image = Image.objects.create(name="lost.png")
            handle = queuert_django.enqueue_job_chain(image_chain, ImageInput(image.pk))
            chain_ids.append(handle.id)
            seen_inside = queuert_django.get_chain(handle.id) is not None
            raise RuntimeError("the view failed after enqueueing")
    except RuntimeError:
        pass
    image, kept_id = upload("kept.png")
    kept = queuert_django.get_chain(kept_id)
    return {
        "seen_inside": seen_inside,
        "rolled_back_chain": queuert_django.get_chain(chain_ids[0]) is not None,
        "rolled_back_rows": Image.objects.filter(name="lost.png").count(),
        "kept_rows": Image.objects.filter(name="kept.png").count(),
        "kept_status": None if kept is None else kept.status,
    }


def _run_worker_until(chains: list[tuple[str, str]]) -> None:
    """Run the project's worker (QUEUERT["WORKER"]) until every chain, given as
    (chain name, chain id), has ended."""
    import queuert
    from tests.django.project.shop.jobs import worker

    async def main() -> None:
        running = await worker()
        try:
            async with running:
                for name, chain_id in chains:
                    handle = queuert.ChainHandle(chain_id, running.app.chains[name])
                    with contextlib.suppress(queuert.ChainFailedError):  # read back below
                        await running.app.wait_for_chain(
                            handle, timeout=TIMEOUT_S, poll_interval=0.05
                        )
        finally:
            await running.app.close()

    asyncio.run(main())


def worker_runs_chain() -> dict[str, Any]:
    """A committed block's chain is run to completion by an asynchronous worker."""
    import queuert_django
    from tests.django.project.shop.jobs import upload
    from tests.django.project.shop.models import Image

    image, chain_id = upload("cat.png")
    _run_worker_until([("process-image", chain_id)])
    record = queuert_django.get_chain(chain_id)
    assert record is not None
    return {
        "status": record.status,
        "output": record.output_value(),
        "processed": Image.objects.get(pk=image.pk).processed,
        "image_id": image.pk,
    }


def tasks_run() -> dict[str, Any]:
    """django.tasks tasks enqueued with .enqueue() run on a worker; one enqueued in a
    block that rolled back never exists."""
    from django.db import transaction
    from django.tasks import TaskResultStatus, default_task_backend
    from django.tasks.exceptions import TaskResultDoesNotExist

    from tests.django.project.shop.jobs import add, explode, rename
    from tests.django.project.shop.models import Image

    image = Image.objects.create(name="old.png")
    with transaction.atomic():
        added = add.enqueue(2, 3)
        renamed = rename.enqueue(image.pk, name="new.png")
        before = default_task_backend.get_result(added.id).status
    failed = explode.enqueue()
    lost_id = ""
    try:
        with transaction.atomic():
            lost_id = add.enqueue(1, 1).id
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    default = "django-task.default"
    _run_worker_until([(default, added.id), (default, renamed.id), (default, failed.id)])
    added.refresh()
    renamed.refresh()
    failed.refresh()
    try:
        default_task_backend.get_result(lost_id)
        lost_exists = True
    except TaskResultDoesNotExist:
        lost_exists = False
    return {
        "before": before,
        "added": [added.status, added.return_value],
        "renamed": [renamed.status, renamed.return_value, Image.objects.get(pk=image.pk).name],
        "failed": [
            failed.status == TaskResultStatus.FAILED,
            [e.exception_class_path for e in failed.errors],
        ],
        "same_task": add.get_result(added.id).task.func is add.func,
        "lost_exists": lost_exists,
    }


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "rolled_back": rolled_back,
    "worker_runs_chain": worker_runs_chain,
    "tasks_run": tasks_run,
}


def main() -> None:
    django.setup()
    result = SCENARIOS[sys.argv[1]]()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
