"""The key a job is stored with for its queue's per-key concurrency and rate limits."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from queuert.errors import ValidationError
from queuert.validation import check_text, show

if TYPE_CHECKING:
    from queuert.definitions import QueueDef


def job_key(queue: QueueDef[Any, Any], value: object) -> str | None:
    """The key of a job of ``queue`` with input ``value``, computed by the queue's
    ``concurrency_key`` function: ``None`` for a queue without per-key limits. Raises
    :class:`~queuert.errors.ValidationError` when the function raises or returns
    something other than storable text."""
    key_of = queue.concurrency_key
    if key_of is None:
        return None
    try:
        key = key_of(value)
    except Exception as exc:
        raise ValidationError(
            f"concurrency_key of queue {queue.name!r} raised {type(exc).__name__}: {show(str(exc))}"
        ) from exc
    return check_text(f"concurrency_key of queue {queue.name!r}", key)
