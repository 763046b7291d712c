"""Global concurrency limits of a queue: at most N of its jobs ``running`` across
every worker at once, or at most N per concurrency key.

A limit is declared on the queue (``queuert.chain(..., concurrency_limit=N)``,
``chain.queue(..., concurrency_limit=N)``); a per-key limit adds
``concurrency_key=lambda input: ...``, computed from the job's input when the
job is created and stored with it. The state adapter enforces the limit when it
leases jobs (:meth:`~queuert.ports.state.StateAdapter.acquire_limited_jobs`), so
no worker can take a job that would exceed it, however many acquire at once.
Only jobs whose lease is still valid count: an expired lease frees its place
before the reaper runs. A job held back by a limit stays ``pending``, is not an
attempt, and does not hold back jobs of other queues or other keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from queuert.errors import ConfigurationError, ValidationError
from queuert.ports.state import StateAdapter
from queuert.records import JobRecord
from queuert.validation import check_int32, check_text, show

if TYPE_CHECKING:
    from queuert.definitions import QueueDef


@dataclass(frozen=True, slots=True)
class ConcurrencyLimit:
    """At most ``limit`` running jobs of a queue, counted per concurrency key when
    ``key`` is set (jobs stored without a key then count as one group)."""

    limit: int
    key: Callable[[Any], str] | None = None

    @property
    def per_key(self) -> bool:
        return self.key is not None


def concurrency_limit(limit: object, key: object) -> ConcurrencyLimit | None:
    """The limit declared by a queue's ``concurrency_limit`` and ``concurrency_key``
    arguments, or ``None``. Raises :class:`~queuert.errors.ValidationError` for a
    limit that is not a positive 32-bit integer, a key that is not callable, or a key
    without a limit."""
    if limit is None:
        if key is not None:
            raise ValidationError(
                f"concurrency_key needs a concurrency_limit, got key {show(key)} alone"
            )
        return None
    checked = check_int32("concurrency_limit", limit, minimum=1)
    if key is not None and not callable(key):
        raise ValidationError(f"concurrency_key must be callable, got {show(key)}")
    return ConcurrencyLimit(limit=checked, key=key)


def concurrency_key_of(
    queue_name: str, limit: ConcurrencyLimit | None, value: object
) -> str | None:
    """The concurrency key of a job of ``queue_name`` with input ``value``: ``None``
    without a per-key limit. Raises :class:`~queuert.errors.ValidationError` when the
    key function raises or returns something other than storable text."""
    if limit is None or limit.key is None:
        return None
    try:
        key = limit.key(value)
    except Exception as exc:
        raise ValidationError(
            f"concurrency_key of queue {queue_name!r} raised {type(exc).__name__}: {show(str(exc))}"
        ) from exc
    return check_text(f"concurrency_key of queue {queue_name!r}", key)


def split_by_limit(
    queues: Mapping[str, QueueDef[Any, Any]], names: Sequence[str]
) -> tuple[list[str], list[tuple[str, ConcurrencyLimit]]]:
    """``names`` split into queues without a concurrency limit and limited queues
    with their limit."""
    plain: list[str] = []
    limited: list[tuple[str, ConcurrencyLimit]] = []
    for name in names:
        limit = queues[name].limit
        if limit is None:
            plain.append(name)
        else:
            limited.append((name, limit))
    return plain, limited


def check_supported(
    state: StateAdapter[Any], limited: Sequence[tuple[str, ConcurrencyLimit]]
) -> None:
    """Raise :class:`~queuert.errors.ConfigurationError` when a queue declares a
    limit that ``state`` cannot enforce."""
    if limited and not state.capabilities.concurrency_limits:
        names = ", ".join(repr(name) for name, _ in limited[:5])
        raise ConfigurationError(
            f"queue(s) {names} declare a concurrency limit, which the state adapter "
            "does not support (capabilities.concurrency_limits)"
        )


async def acquire_jobs(
    state: StateAdapter[Any],
    *,
    plain: Sequence[str],
    limited: Sequence[tuple[str, ConcurrencyLimit]],
    limit: int,
    owner: str,
    lease_ms: int,
) -> list[JobRecord]:
    """Lease up to ``limit`` jobs: first of the ``plain`` queues in one call, then of
    each limited queue under its limit while free slots remain."""
    records: list[JobRecord] = []
    if plain:
        records = await state.acquire_jobs(
            tx=None, queues=plain, limit=limit, owner=owner, lease_ms=lease_ms
        )
    for name, queue_limit in limited:
        free = limit - len(records)
        if free <= 0:
            break
        records += await state.acquire_limited_jobs(
            tx=None,
            queue=name,
            limit=free,
            owner=owner,
            lease_ms=lease_ms,
            concurrency_limit=queue_limit.limit,
            per_key=queue_limit.per_key,
        )
    return records
