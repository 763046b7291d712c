"""The ``QUEUERT`` setting, read and checked::

    QUEUERT = {
        "DATABASE": "default",              # the DATABASES alias holding queuert's tables
        "CHAINS": "myproject.jobs:chains",  # the chains the project starts
        "WORKER": "myproject.jobs:worker",  # what `manage.py queuert worker` runs
        "NOTIFY": "database",               # None, "database" (LISTEN/NOTIFY) or a URL
        "SCHEMA": "queuert",                # PostgreSQL schema of queuert's tables
        "TABLE_PREFIX": "",                 # prefix of queuert's table names
    }

``CHAINS`` names a sequence of chain definitions (or a function returning one):
the chains :func:`queuert_django.enqueue_job_chain` may start. ``WORKER`` names what
``queuert --app`` takes: a :class:`~queuert.Worker`, a :class:`~queuert.Queuert`
with a worker beside it, or a function (possibly async) returning either; by
default a worker that runs the tasks of :mod:`django.tasks` only.

Every key is optional. The setting is read at each call (so ``override_settings``
works in tests); a bad value raises :class:`~queuert.ConfigurationError` naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings

from queuert.errors import ConfigurationError
from queuert.validation import show

_KEYS = frozenset({"DATABASE", "CHAINS", "WORKER", "NOTIFY", "SCHEMA", "TABLE_PREFIX"})

DEFAULT_WORKER = "queuert_django.application:tasks_worker"
"""The ``WORKER`` used when the setting names none: a worker running the tasks of
``django.tasks`` enqueued through :class:`~queuert_django.tasks.QueuertBackend`."""


@dataclass(frozen=True, slots=True)
class Config:
    """The ``QUEUERT`` setting with its defaults filled in."""

    database: str = "default"
    chains: str | None = None
    worker: str = DEFAULT_WORKER
    notify: str | None = None
    schema: str | None = None
    table_prefix: str = ""


def _text(raw: dict[str, Any], key: str, default: str | None) -> str | None:
    value = raw.get(key, default)
    if value is None or isinstance(value, str):
        return value
    raise ConfigurationError(f"QUEUERT[{key!r}] must be a string, got {show(value)}")


def config() -> Config:
    """The current ``QUEUERT`` setting. Raises ConfigurationError for a setting that is
    not a dict, an unknown key or a value of the wrong type."""
    raw = getattr(settings, "QUEUERT", None) or {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"the QUEUERT setting must be a dict, got {show(raw)}")
    unknown = sorted(str(key) for key in raw if key not in _KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown key {unknown[0][:60]!r} in the QUEUERT setting; known keys: "
            + ", ".join(sorted(_KEYS))
        )
    database = _text(raw, "DATABASE", "default")
    worker = _text(raw, "WORKER", DEFAULT_WORKER) or DEFAULT_WORKER
    chains = _text(raw, "CHAINS", None) or None
    if not database:
        raise ConfigurationError("QUEUERT['DATABASE'] must name an alias of DATABASES")
    specs = {"WORKER": worker} if chains is None else {"WORKER": worker, "CHAINS": chains}
    for key, spec in specs.items():
        module, sep, attribute = spec.partition(":")
        if not (module and sep and attribute):
            raise ConfigurationError(
                f"QUEUERT[{key!r}] must look like 'package.module:attribute', got {show(spec)}"
            )
    return Config(
        database=database,
        chains=chains,
        worker=worker,
        notify=_text(raw, "NOTIFY", None) or None,
        schema=_text(raw, "SCHEMA", None) or None,
        table_prefix=_text(raw, "TABLE_PREFIX", "") or "",
    )
