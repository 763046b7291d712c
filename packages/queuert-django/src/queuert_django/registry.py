"""The chains of the project: those ``QUEUERT["CHAINS"]`` names, and the chains
that run the tasks of ``django.tasks``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.module_loading import import_string

from queuert.definitions import ChainDef
from queuert.errors import ConfigurationError
from queuert.validation import show
from queuert_django.conf import config
from queuert_django.task_chains import task_chains


def project_chains() -> list[ChainDef[Any, Any]]:
    """The chains ``QUEUERT["CHAINS"]`` names (a sequence of chain definitions, or a
    function returning one), followed by the chains of the ``django.tasks`` queues of
    every :class:`~queuert_django.tasks.QueuertBackend` in ``TASKS``. Raises
    ConfigurationError when the setting cannot be imported or holds something else."""
    spec = config().chains
    found: list[ChainDef[Any, Any]] = []
    if spec is not None:
        found = _import_chains(spec)
    for chain in task_chains():
        if chain not in found:
            found.append(chain)
    return found


def _import_chains(spec: str) -> list[ChainDef[Any, Any]]:
    try:
        value: Any = import_string(spec.replace(":", ".", 1))
    except ImportError as exc:
        raise ConfigurationError(f"cannot import QUEUERT['CHAINS'] {spec!r}: {exc}") from exc
    if callable(value) and not isinstance(value, ChainDef):
        value = value()
    if isinstance(value, ChainDef):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(c, ChainDef) for c in value):
        raise ConfigurationError(
            f"QUEUERT['CHAINS'] {spec!r} must be a sequence of chain definitions "
            f"(queuert.chain(...)), got {show(value)}"
        )
    return list(value)
