"""Scenarios of the Django project, each run in a process of its own (Django is
configured once per process): ``python -m tests.django.scenarios NAME``, with
``DJANGO_SETTINGS_MODULE`` and ``QUEUERT_TEST_DJANGO_DB`` set. Each prints one line
of JSON with what it observed, for the test to check."""

from __future__ import annotations

import asyncio
import contextlib
import io
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
    from datetime import timedelta

    from django.db import transaction
    from django.tasks import TaskResultStatus, default_task_backend
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.utils import timezone

    from queuert_django.database import driver_connection, wrapper
    from queuert_django.sync_client import client
    from tests.django.project.shop.jobs import add, explode, rename, which_attempt
    from tests.django.project.shop.models import Image

    image = Image.objects.create(name="old.png")
    with transaction.atomic():
        added = add.enqueue(2, 3)
        renamed = rename.enqueue(image.pk, name="new.png")
        before = default_task_backend.get_result(added.id).status
    failed = explode.enqueue()
    attempt = which_attempt.enqueue()
    later = timezone.now() + timedelta(hours=1)
    deferred = add.using(run_after=later).enqueue(1, 2)
    sync, alias = client()
    with transaction.atomic():
        conn = driver_connection(wrapper(alias))
        deferred_job = sync.get_job(conn, deferred.id)
        renamed_job = sync.get_job(conn, renamed.id)
    assert deferred_job is not None and renamed_job is not None
    lost_id = ""
    try:
        with transaction.atomic():
            lost_id = add.enqueue(1, 1).id
            raise RuntimeError("rolled back")
    except RuntimeError:
        pass
    from django.tasks.signals import task_finished, task_started

    signalled: list[list[Any]] = []

    def on_started(sender: type, task_result: Any, **kwargs: Any) -> None:
        signalled.append(["started", sender.__name__, task_result.task.func.__name__])

    def on_finished(sender: type, task_result: Any, **kwargs: Any) -> None:
        ended = [sender.__name__, task_result.task.func.__name__, task_result.status]
        if task_result.status == TaskResultStatus.SUCCESSFUL:
            ended.append(task_result.return_value)
        signalled.append(["finished", *ended])

    task_started.connect(on_started)
    task_finished.connect(on_finished)
    default = "django-task.default"
    ended: list[Any] = [added, renamed, failed, attempt]
    _run_worker_until([(default, result.id) for result in ended])
    attempt.refresh()
    deferred.refresh()
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
        "context": attempt.return_value == [1, attempt.id],
        "lost_exists": lost_exists,
        "deferred": [deferred_job.scheduled_at >= later, deferred.status],
        "priority": renamed_job.priority,
        "signals": sorted(signalled),
        "signals_attempt": attempt.return_value,
    }


def upload_and_wait() -> dict[str, Any]:
    """Upload an image and wait until a worker of another process has run its chain."""
    import time

    import queuert_django
    from tests.django.project.shop.jobs import upload
    from tests.django.project.shop.models import Image

    image, chain_id = upload("remote.png")
    deadline = time.monotonic() + TIMEOUT_S
    record = queuert_django.get_chain(chain_id)
    while record is not None and record.status != "completed" and time.monotonic() < deadline:
        time.sleep(0.05)
        record = queuert_django.get_chain(chain_id)
    return {
        "status": None if record is None else record.status,
        "processed": Image.objects.get(pk=image.pk).processed,
    }


def wakes_on_commit() -> dict[str, Any]:
    """An idle worker that polls only every POLL_S seconds runs a chain committed in
    an atomic block at once: the commit woke it (QUEUERT["NOTIFY"])."""
    import threading
    import time

    import queuert_django
    from tests.django.project.shop.jobs import image_chain, process_image, upload

    poll_s = 60.0
    ready = threading.Event()
    stop = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        app = await queuert_django.connect()
        running = queuert_django.worker(app, poll_interval=poll_s)
        running.handler(image_chain)(process_image)
        box["app"] = app
        try:
            async with running:
                ready.set()
                await asyncio.to_thread(stop.wait, TIMEOUT_S * 2)
        finally:
            await app.close()

    thread = threading.Thread(target=lambda: asyncio.run(serve()))
    thread.start()
    try:
        assert ready.wait(TIMEOUT_S)
        deadline = time.monotonic() + TIMEOUT_S
        # Its first look for jobs is done (and found none): it now waits for a signal.
        while box["app"].metrics.get("worker.acquire_attempts") < 1:
            assert time.monotonic() < deadline, "the worker never looked for jobs"
            time.sleep(0.01)
        started = time.monotonic()
        _image, chain_id = upload("wake.png")
        record = queuert_django.get_chain(chain_id)
        while record is not None and record.status != "completed":
            assert time.monotonic() - started < poll_s / 2, "the worker was not woken"
            time.sleep(0.01)
            record = queuert_django.get_chain(chain_id)
        return {"status": None if record is None else record.status}
    finally:
        stop.set()
        thread.join(TIMEOUT_S)


def operations() -> dict[str, Any]:
    """cancel_chain and retry_chain beside enqueue_job_chain; a chain the settings do
    not list is refused before anything is written."""
    import queuert
    import queuert_django
    from tests.django.project.shop.jobs import ImageInput, upload
    from tests.django.project.shop.models import Image

    _image, chain_id = upload("cancel-me.png")
    cancelled = queuert_django.cancel_chain(chain_id).status
    retried = queuert_django.retry_chain(chain_id).status
    stray = queuert.chain("not-listed", input=ImageInput, output=ImageInput)
    try:
        queuert_django.enqueue_job_chain(stray, ImageInput(1))
        refused = ""
    except queuert.UnknownChainError as exc:
        refused = str(exc)
    try:
        queuert_django.cancel_chain("no-such-chain")
        unknown = ""
    except queuert.QueuertError as exc:
        unknown = type(exc).__name__
    from django.core.management import CommandError, call_command

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        call_command("queuert", "chain", chain_id, json=True)
    try:
        call_command("queuert", "chain", "no-such-chain")
        command_error = ""
    except CommandError as exc:
        command_error = str(exc)
    return {
        "command": json.loads(printed.getvalue())["chain"]["status"],
        "command_error": command_error,
        "cancelled": cancelled,
        "retried": retried,
        "refused": refused,
        "unknown": unknown,
        "images": Image.objects.count(),
    }


def urls() -> dict[str, Any]:
    """The adapter URLs built from DATABASES entries."""
    from queuert_django.conf import Config
    from queuert_django.database import url_from_settings

    def url_of(entry: dict[str, Any], **queuert: Any) -> str:
        vendor = "sqlite" if "sqlite" in entry["ENGINE"] else "postgresql"
        cfg = Config(schema=queuert.get("SCHEMA"), table_prefix=queuert.get("TABLE_PREFIX", ""))
        return url_from_settings(entry, vendor=vendor, alias="default", cfg=cfg)

    pg = {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app"}
    return {
        "password": url_of({**pg, "PASSWORD": "p@ss:w/rd", "HOST": "db.internal", "PORT": 6432}),
        "socket": url_of({**pg, "HOST": "/var/run/postgresql", "PORT": "5433"}),
        "options": url_of(
            {**pg, "HOST": "::1", "OPTIONS": {"sslmode": "require"}},
            SCHEMA="jobs",
            TABLE_PREFIX="q_",
        ),
        "sqlite": url_of({"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/app/db.sqlite3"}),
    }


def bad_settings() -> dict[str, Any]:
    """A bad QUEUERT setting or database is a ConfigurationError naming it."""
    from django.test import override_settings

    import queuert
    from queuert_django import state_url
    from queuert_django.conf import Config
    from queuert_django.database import url_from_settings

    found: dict[str, Any] = {}
    cases: dict[str, dict[str, Any]] = {
        "unknown_key": {"QUEUERT": {"DATABSE": "default"}},
        "missing_alias": {"QUEUERT": {"DATABASE": "jobs"}},
        "bad_chains": {"QUEUERT": {"CHAINS": "nocolon"}},
        "not_a_dict": {"QUEUERT": ["default"]},
    }
    for name, changes in cases.items():
        with override_settings(**changes):
            try:
                found[name] = state_url()
            except queuert.ConfigurationError as exc:
                found[name] = str(exc)
    for name, entry, vendor in [
        ("memory", {"NAME": ":memory:"}, "sqlite"),
        ("mysql", {"NAME": "shop"}, "mysql"),
    ]:
        try:
            found[name] = url_from_settings(entry, vendor=vendor, alias="default", cfg=Config())
        except queuert.ConfigurationError as exc:
            found[name] = str(exc)
    return found


SCENARIOS: dict[str, Callable[[], dict[str, Any]]] = {
    "rolled_back": rolled_back,
    "worker_runs_chain": worker_runs_chain,
    "tasks_run": tasks_run,
    "operations": operations,
    "wakes_on_commit": wakes_on_commit,
    "upload_and_wait": upload_and_wait,
    "urls": urls,
    "bad_settings": bad_settings,
}


def main() -> None:
    django.setup()
    result = SCENARIOS[sys.argv[1]]()
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
