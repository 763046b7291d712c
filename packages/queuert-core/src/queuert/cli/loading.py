"""Finding the application the command works on: ``--app module:attribute`` (a
:class:`~queuert.Queuert`, a :class:`~queuert.Worker`, or a callable returning
either, possibly async), or ``--state``/``--notify`` URLs for commands that need
no handlers."""

from __future__ import annotations

import importlib
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from queuert.client import Queuert
from queuert.errors import ConfigurationError
from queuert.worker import Worker


@dataclass
class Target:
    """The application and, when ``--app`` named or found one, its worker."""

    app: Queuert[Any]
    worker: Worker[Any] | None = None


def _import(spec: str) -> tuple[Any, Any]:
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(
            f"--app must look like 'package.module:attribute', got {spec[:120]!r}"
        )
    # As python -m and procrastinate do: modules of the current directory are found.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r} named by --app: {exc}") from exc
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ConfigurationError(
                f"module {module_name!r} has no attribute {attribute!r} (from --app)"
            ) from None
    return module, value


async def load(app_spec: str | None, state: str | None, notify: str | None) -> Target:
    """The target of a command. Raises ConfigurationError (one line) when neither
    ``--app`` nor a state URL is given, or either cannot be resolved."""
    if app_spec:
        module, value = _import(app_spec)
        if callable(value) and not isinstance(value, Queuert | Worker):
            value = value()
            if inspect.isawaitable(value):
                value = await value
        if isinstance(value, Worker):
            return Target(app=value.app, worker=value)
        if isinstance(value, Queuert):
            workers = [v for v in vars(module).values() if isinstance(v, Worker) and v.app is value]
            return Target(app=value, worker=workers[0] if workers else None)
        raise ConfigurationError(
            f"--app {app_spec[:120]!r} is a {type(value).__name__}, not a Queuert application "
            "or a Worker (or a function returning one)"
        )
    if not state:
        raise ConfigurationError(
            "name the application with --app module:attribute (or QUEUERT_APP), or the "
            "store with --state URL (or QUEUERT_STATE_URL)"
        )
    app = await Queuert.from_url(chains=[], state=state, notify=notify or "none")
    return Target(app=app)
