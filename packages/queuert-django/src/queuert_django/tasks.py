"""A ``django.tasks`` backend that runs tasks on queuert workers::

    TASKS = {"default": {"BACKEND": "queuert_django.tasks.QueuertBackend"}}

``task.enqueue(...)`` starts a chain in the current transaction of the queuert
database (``QUEUERT["DATABASE"]``): inside ``transaction.atomic()`` the task
exists, and runs, only once the block commits. ``manage.py queuert worker`` runs
the tasks; the result's id is the chain's id, and :meth:`QueuertBackend.get_result`
reads the chain back (status, return value, error).

Supported: priorities (higher first), ``run_after``, coroutine functions, results
from any process, the ``QUEUES`` setting (one chain per queue, so a worker may run
some queues only). ``OPTIONS["MAX_ATTEMPTS"]`` (default 1) lets a task that raised
run again, with queuert's exponential backoff. The signals: ``task_enqueued`` at
``enqueue``; ``task_started`` and ``task_finished`` in the worker's process,
around each attempt (see :func:`queuert_django.task_chains.run_task`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from queuert.errors import ValidationError
from queuert.records import ChainRecord
from queuert_django import calls
from queuert_django.task_chains import (
    PREFIX,
    TaskCall,
    max_attempts_of,
    task_chain,
    valid_queue_name,
)

_STATUSES = {
    "blocked": TaskResultStatus.READY,
    "pending": TaskResultStatus.READY,
    "running": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


class QueuertBackend(BaseTaskBackend):
    """Tasks as queuert chains in the project's database; see the module docs."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.max_attempts = max_attempts_of(params)

    def validate_task(self, task: Task[Any, Any]) -> None:
        super().validate_task(task)
        if not valid_queue_name(task.queue_name):
            raise InvalidTask(
                f"queue name {task.queue_name[:100]!r} must be letters, digits, '_', '.' or '-'"
            )

    def enqueue(self, task: Task[Any, Any], args: Any, kwargs: Any) -> TaskResult[Any, Any]:
        """Start the task's chain in the current transaction of the queuert database
        (it runs once that commits). Raises InvalidTask for a task this backend
        cannot run, and a queuert error for arguments that are not JSON."""
        self.validate_task(task)
        call = TaskCall(
            task=task.module_path,
            # Django normalises them the same way (tuples become lists, ...).
            args=cast(list[Any], normalize_json(list(args))),
            kwargs=cast(dict[str, Any], normalize_json(dict(kwargs))),
            backend=self.alias,
        )
        run_after = task.run_after
        if run_after is not None and timezone.is_naive(run_after):
            # Only with USE_TZ = False (validate_task refuses it otherwise): a naive
            # time is in the project's TIME_ZONE, as Django reads it everywhere.
            run_after = timezone.make_aware(run_after)
        handle = calls.enqueue_job_chain(
            task_chain(task.queue_name, max_attempts=self.max_attempts),
            call,
            priority=task.priority,
            start_at=run_after,
        )
        result: TaskResult[Any, Any] = TaskResult(
            task=task,
            id=handle.id,
            status=TaskResultStatus.READY,
            enqueued_at=None,
            started_at=None,
            last_attempted_at=None,
            finished_at=None,
            args=call.args,
            kwargs=call.kwargs,
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any, Any]:
        """The task's result as its chain holds it now. Raises TaskResultDoesNotExist
        for an id that is no task's chain."""
        try:
            record = calls.get_chain(result_id) if isinstance(result_id, str) else None
        except ValidationError:
            record = None  # an id that cannot be a chain's
        if record is None or not record.chain_name.startswith(PREFIX):
            raise TaskResultDoesNotExist(result_id)
        return _result(record)


def _result(record: ChainRecord) -> TaskResult[Any, Any]:
    data = record.input_value()
    call = TaskCall(
        task=str(data.get("task", "")),
        args=list(data.get("args", [])),
        kwargs=dict(data.get("kwargs", {})),
        backend=str(data.get("backend", "default")),
    )
    try:
        task = import_string(call.task)
    except ImportError:
        task = None
    if not isinstance(task, Task):
        raise TaskResultDoesNotExist(record.id)
    status = _STATUSES[record.status]
    started: datetime | None = record.updated_at if status != TaskResultStatus.READY else None
    finished = record.completed_at or (
        record.updated_at if status == TaskResultStatus.FAILED else None
    )
    errors = []
    if record.error is not None and status == TaskResultStatus.FAILED:
        errors.append(
            TaskError(
                exception_class_path=record.error.type,
                traceback=record.error.traceback or record.error.message,
            )
        )
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=record.id,
        status=status,
        enqueued_at=record.created_at,
        started_at=started,
        finished_at=finished,
        last_attempted_at=started,
        args=call.args,
        kwargs=call.kwargs,
        backend=call.backend,
        errors=errors,
        worker_ids=[],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        # TaskResult is frozen; Django's own backends set the value the same way.
        object.__setattr__(result, "_return_value", record.output_value())
    return result
