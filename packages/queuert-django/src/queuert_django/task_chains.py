"""The chains that carry ``django.tasks`` tasks, and their handler.

Each queue of a :class:`~queuert_django.tasks.QueuertBackend` is a chain named
``django-task.<queue>`` with one job: its input names the task by its module path
and holds the arguments; the worker imports the task and calls its function, and
the chain's output is the task's return value (as JSON). A task that raises fails
its chain at once (``django.tasks`` has no retries of its own); ``"MAX_ATTEMPTS"``
in the backend's ``OPTIONS`` allows more attempts, with queuert's backoff."""

from __future__ import annotations

import re
import threading
import traceback
from dataclasses import dataclass, field, replace
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.tasks import Task, TaskContext, TaskResult, TaskResultStatus, task_backends
from django.tasks.base import TaskError
from django.tasks.signals import task_finished, task_started
from django.utils import timezone
from django.utils.json import normalize_json
from django.utils.module_loading import import_string

from queuert.context import JobContext
from queuert.definitions import ChainDef, chain
from queuert.errors import ConfigurationError, NonRetryableError
from queuert.job import Job
from queuert.retry import RetryPolicy
from queuert.worker import Worker

PREFIX = "django-task."
"""Chain names of task queues: ``django-task.<queue>``."""

_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
_BACKEND_PATH = "queuert_django.tasks.QueuertBackend"


@dataclass
class TaskCall:
    """The input of a task's job: which task, with what arguments."""

    task: str
    """The task's module path (``myapp.tasks.send_email``)."""
    args: list[Any] = field(default_factory=list)
    kwargs: dict[str, Any] = field(default_factory=dict)
    backend: str = "default"
    """The alias in ``TASKS`` the task was enqueued through."""


_chains: dict[tuple[str, int], ChainDef[TaskCall, Any]] = {}
_lock = threading.Lock()


def valid_queue_name(name: object) -> bool:
    """Whether ``name`` can name a queue of tasks (it becomes part of a chain name)."""
    return isinstance(name, str) and _QUEUE_NAME.fullmatch(name) is not None


def task_chain(queue_name: str, *, max_attempts: int = 1) -> ChainDef[TaskCall, Any]:
    """The chain of the tasks of ``queue_name`` (one definition per queue and process).
    Raises ConfigurationError for a queue name that cannot name a chain."""
    if not valid_queue_name(queue_name):
        raise ConfigurationError(
            f"task queue name {queue_name[:100]!r} must be letters, digits, '_', '.' or '-'"
        )
    with _lock:
        key = (queue_name, max_attempts)
        found = _chains.get(key)
        if found is None:
            found = chain(
                PREFIX + queue_name,
                input=TaskCall,
                output=Any,
                retry=RetryPolicy(max_attempts=max_attempts),
            )
            _chains[key] = found
        return found


def backend_params() -> list[tuple[str, dict[str, Any]]]:
    """The ``TASKS`` entries whose backend is a QueuertBackend, as (alias, params)."""
    from queuert_django.tasks import QueuertBackend

    found = []
    for alias, params in (getattr(settings, "TASKS", None) or {}).items():
        path = params.get("BACKEND")
        if path == _BACKEND_PATH:
            found.append((alias, params))
            continue
        try:
            backend = import_string(path)
        except ImportError:
            continue  # Django reports it when the backend is used
        if isinstance(backend, type) and issubclass(backend, QueuertBackend):
            found.append((alias, params))
    return found


def max_attempts_of(params: dict[str, Any]) -> int:
    """``OPTIONS["MAX_ATTEMPTS"]`` of a backend's parameters (default 1)."""
    value = (params.get("OPTIONS") or {}).get("MAX_ATTEMPTS", 1)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise ConfigurationError(
            f"OPTIONS['MAX_ATTEMPTS'] of a QueuertBackend must be an integer in 1..1000, "
            f"got {value!r:.40}"
        )
    return value


def task_chains() -> list[ChainDef[TaskCall, Any]]:
    """The chains of every queue of every QueuertBackend in ``TASKS``."""
    found: list[ChainDef[TaskCall, Any]] = []
    for _alias, params in backend_params():
        attempts = max_attempts_of(params)
        for queue_name in params.get("QUEUES") or ["default"]:
            chain_def = task_chain(queue_name, max_attempts=attempts)
            if chain_def not in found:
                found.append(chain_def)
    return found


def register_task_handlers(worker: Worker[Any]) -> None:
    """Register :func:`run_task` for every task chain the worker's application has."""
    for name, chain_def in worker.app.chains.items():
        if name.startswith(PREFIX):
            worker.handler(chain_def)(run_task)


def load_task(path: str) -> Task[Any, Any]:
    """The task object at ``path``. Raises NonRetryableError when it is gone (a
    deployment removed or renamed it): no later attempt would find it."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise NonRetryableError(f"cannot import task {path!r}: {exc}") from exc
    if not isinstance(found, Task):
        raise NonRetryableError(f"{path!r} is not a task (decorate it with @task)")
    return found


def _call_sync(func: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    # Runs on a thread of its own: Django's connections are per thread and would stay
    # open past CONN_MAX_AGE or broken, as after a request, without these calls.
    close_old_connections()
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


async def run_task(job: Job[TaskCall], ctx: JobContext[Any, Any]) -> Any:
    """The handler of the task chains: import the task, call its function with the
    arguments (a synchronous function on a thread of its own, a coroutine function
    on the worker's loop), and complete the chain with its return value.

    Sends ``django.tasks``' ``task_started`` before the call and ``task_finished``
    after each attempt (``SUCCESSFUL`` with the return value, or ``FAILED`` with
    the error; an attempt that fails may be followed by another, with
    ``MAX_ATTEMPTS``), from the worker's process, with the backend's class as sender.
    A receiver that raises fails the attempt as the task would."""
    call = job.input
    task = load_task(call.task)
    args: list[Any] = list(call.args)
    result: TaskResult[Any, Any] = TaskResult(
        task=task,
        id=job.chain_id,
        status=TaskResultStatus.RUNNING,
        enqueued_at=job.created_at,
        started_at=timezone.now(),
        finished_at=None,
        last_attempted_at=timezone.now(),
        args=call.args,
        kwargs=call.kwargs,
        backend=call.backend,
        errors=[],
        worker_ids=[ctx.lease.owner] * job.attempt,
    )
    sender = type(task_backends[call.backend])
    if task.takes_context:
        args.insert(0, TaskContext(task_result=result))
    await task_started.asend(sender, task_result=result)
    try:
        if iscoroutinefunction(task.func):
            value = await task.func(*args, **call.kwargs)
        else:
            value = await sync_to_async(_call_sync, thread_sensitive=False)(
                task.func, args, call.kwargs
            )
        value = normalize_json(value)
    except Exception as exc:
        result.errors.append(
            TaskError(
                exception_class_path=f"{type(exc).__module__}.{type(exc).__qualname__}",
                traceback="".join(traceback.format_exception(exc)),
            )
        )
        await task_finished.asend(sender, task_result=_ended(result, TaskResultStatus.FAILED))
        raise
    ended = _ended(result, TaskResultStatus.SUCCESSFUL)
    # TaskResult is frozen; Django's own backends set the value the same way.
    object.__setattr__(ended, "_return_value", value)
    await task_finished.asend(sender, task_result=ended)
    return await ctx.complete(value)


def _ended(result: TaskResult[Any, Any], status: TaskResultStatus) -> TaskResult[Any, Any]:
    return replace(result, status=status, finished_at=timezone.now())
