"""Running a state adapter's asynchronous operation to its end on the calling
thread, without an event loop, for :mod:`queuert.sync`.

An operation given a transaction from :meth:`StateAdapter.sync_transaction
<queuert.ports.state.StateAdapter.sync_transaction>` awaits only that executor's
methods, which do their work before returning, so its coroutine finishes at its
first step: :func:`drive` takes that step. A coroutine that suspends all the same
(waits on something only an event loop could wake) is closed and reported,
never left half done silently.
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any, TypeVar

from queuert.errors import AdapterError

T = TypeVar("T")


class SuspendedError(AdapterError):
    """An operation run by :func:`drive` waited on the event loop."""


def drive(operation: Coroutine[Any, Any, T]) -> T:
    """The result of ``operation``, run to its end without an event loop; its
    exceptions propagate unchanged. Raises :class:`SuspendedError` (an
    :class:`~queuert.errors.AdapterError`) when the operation suspends: it waited on
    something only an event loop could wake, which the adapter's synchronous
    transaction does not cover."""
    try:
        operation.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    operation.close()
    name = getattr(operation, "__qualname__", type(operation).__name__)
    raise SuspendedError(
        f"{name} waited on the event loop; it cannot run on a synchronous connection"
    )
