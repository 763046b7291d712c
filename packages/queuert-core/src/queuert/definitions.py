"""Chain and queue definitions: the typed units of work an application declares."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar, overload

from queuert.codec import Codec
from queuert.errors import ValidationError
from queuert.limits import ConcurrencyLimit
from queuert.limits import concurrency_limit as _limit
from queuert.rates import RateLimit
from queuert.rates import rate_limit as _rate
from queuert.retry import RetryPolicy
from queuert.validation import check_int32, show

InT = TypeVar("InT")
OutT = TypeVar("OutT")
StepInT = TypeVar("StepInT")

# fullmatch: "$" would also match before a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,119}")


def _check_name(kind: str, name: object) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(
            f"{kind} name must be 1-120 letters, digits, '_', '.' or '-' "
            f"(starting with a letter or digit), got {show(name)}"
        )
    return name


def _limits(
    concurrency_limit: object, concurrency_key: object, rate_limit: object
) -> tuple[ConcurrencyLimit | None, RateLimit | None]:
    """The concurrency and rate limits a queue declares. A ``concurrency_key`` needs
    one of the two limits, and applies to each declared."""
    if concurrency_key is not None and concurrency_limit is None and rate_limit is None:
        raise ValidationError(
            "concurrency_key needs a concurrency_limit or a rate_limit, "
            f"got key {show(concurrency_key)} alone"
        )
    rate = _rate(rate_limit, per_key=concurrency_key is not None)
    if rate is not None and concurrency_limit is None:
        if concurrency_key is not None and not callable(concurrency_key):
            raise ValidationError(f"concurrency_key must be callable, got {show(concurrency_key)}")
        return None, rate
    return _limit(concurrency_limit, concurrency_key), rate


class QueueDef(Generic[InT, OutT]):
    """One step of a chain: its name, input type and retry policy.

    ``InT`` is the step's input type, ``OutT`` the output type of the chain the
    step belongs to. The entry queue is the :class:`ChainDef` itself; further
    steps come from :meth:`ChainDef.queue` and are named ``<chain>:<step>``.
    """

    __slots__ = (
        "chain_name",
        "concurrency_key",
        "external",
        "input_codec",
        "limit",
        "load_blockers",
        "name",
        "priority",
        "rate",
        "retry",
    )

    def __init__(
        self,
        *,
        name: str,
        chain_name: str,
        input: type[InT] | Any,
        retry: RetryPolicy,
        priority: int,
        external: bool = False,
        limit: ConcurrencyLimit | None = None,
        rate: RateLimit | None = None,
        concurrency_key: Callable[[Any], str] | None = None,
    ) -> None:
        if not isinstance(retry, RetryPolicy):
            raise ValidationError(f"retry must be a RetryPolicy, got {show(retry)}")
        check_int32("priority", priority)
        self.name = name
        self.chain_name = chain_name
        self.input_codec: Codec[InT] = Codec(input, f"input of queue {name!r}")
        self.retry = retry
        self.priority = priority
        if not isinstance(external, bool):
            raise ValidationError(f"external must be a bool, got {external!r}")
        # Jobs of an external queue are completed by the application
        # (Queuert.complete_job), never acquired by a worker.
        self.external = external
        self.load_blockers = False
        """Deprecated and without effect: the worker fills ``job.blockers`` for every
        job created with blockers, and for no other job. Kept so that declarations
        passing ``load_blockers=`` still work."""
        self.limit = limit
        """The queue's global concurrency limit (see :mod:`queuert.limits`), if any."""
        self.rate = rate
        """The queue's global rate limit (see :mod:`queuert.rates`), if any."""
        self.concurrency_key = concurrency_key
        """The function computing a job's key from its input, for the queue's per-key
        concurrency and rate limits; ``None`` without per-key limits."""

    def __repr__(self) -> str:
        return f"<queue {self.name!r}>"


class ChainDef(QueueDef[InT, OutT]):
    """A named, typed chain of jobs; also its entry queue."""

    __slots__ = ("on_blocker_failure", "output_codec", "queues")

    def __init__(
        self,
        name: str,
        *,
        input: type[InT] | Any,
        output: type[OutT] | Any,
        retry: RetryPolicy | None = None,
        priority: int = 0,
        on_blocker_failure: str = "fail",
        load_blockers: bool = False,
        concurrency_limit: int | None = None,
        concurrency_key: Callable[[InT], str] | None = None,
        rate_limit: str | None = None,
    ) -> None:
        _check_name("chain", name)
        limit, rate = _limits(concurrency_limit, concurrency_key, rate_limit)
        if on_blocker_failure not in ("fail", "run"):
            raise ValidationError(
                f"on_blocker_failure must be 'fail' or 'run', got {on_blocker_failure!r:.200}"
            )
        super().__init__(
            name=name,
            chain_name=name,
            input=input,
            retry=retry or RetryPolicy(),
            priority=priority,
            limit=limit,
            rate=rate,
            concurrency_key=concurrency_key,
        )
        self.output_codec: Codec[OutT] = Codec(output, f"output of chain {name!r}")
        self.queues: dict[str, QueueDef[Any, OutT]] = {name: self}
        self.on_blocker_failure = on_blocker_failure
        self.load_blockers = bool(load_blockers)
        """What a job of this chain waiting on blockers does when one of them ends
        failed or cancelled: ``"fail"`` (with its chain) or ``"run"`` (once every
        blocker has ended, reading which completed; see :mod:`queuert.blockers`)."""

    @overload
    def queue(
        self,
        step: str,
        *,
        input: type[StepInT],
        retry: RetryPolicy | None = None,
        priority: int | None = None,
        external: bool = False,
        load_blockers: bool = False,
        concurrency_limit: int | None = None,
        concurrency_key: Callable[[StepInT], str] | None = None,
        rate_limit: str | None = None,
    ) -> QueueDef[StepInT, OutT]: ...
    @overload
    def queue(
        self,
        step: str,
        *,
        input: Any,
        retry: RetryPolicy | None = None,
        priority: int | None = None,
        external: bool = False,
        load_blockers: bool = False,
        concurrency_limit: int | None = None,
        concurrency_key: Callable[[Any], str] | None = None,
        rate_limit: str | None = None,
    ) -> QueueDef[Any, OutT]: ...
    def queue(
        self,
        step: str,
        *,
        input: Any,
        retry: RetryPolicy | None = None,
        priority: int | None = None,
        external: bool = False,
        load_blockers: bool = False,
        concurrency_limit: int | None = None,
        concurrency_key: Callable[[Any], str] | None = None,
        rate_limit: str | None = None,
    ) -> QueueDef[Any, OutT]:
        """Declare a further step ``<chain>:<step>`` with its own input type. An
        ``external`` step is never run by a worker: the application ends its jobs with
        :meth:`~queuert.Queuert.complete_job` (webhooks, approvals).
        ``load_blockers`` is accepted and ignored (deprecated: every job created with
        blockers finds them in ``job.blockers``). With ``concurrency_limit``, at most
        that many of its jobs run at once across every worker, and with ``rate_limit``
        (``"100/min"``) at most that many start per window; ``concurrency_key`` makes
        both count per key, computed from each job's input when the job is created
        (see :mod:`queuert.limits` and :mod:`queuert.rates`). Raises
        :class:`~queuert.errors.ValidationError` for a bad or duplicate name or a bad
        limit."""
        _check_name("step", step)
        limit, rate = _limits(concurrency_limit, concurrency_key, rate_limit)
        name = f"{self.name}:{step}"
        if name in self.queues:
            raise ValidationError(f"queue {name!r} is already declared")
        q: QueueDef[Any, OutT] = QueueDef(
            name=name,
            chain_name=self.name,
            input=input,
            retry=retry or self.retry,
            priority=self.priority if priority is None else priority,
            external=external,
            limit=limit,
            rate=rate,
            concurrency_key=concurrency_key,
        )
        q.load_blockers = bool(load_blockers)
        self.queues[name] = q
        return q

    def __repr__(self) -> str:
        return f"<chain {self.name!r}>"


@overload
def chain(
    name: str,
    *,
    input: type[InT],
    output: type[OutT],
    retry: RetryPolicy | None = None,
    priority: int = 0,
    on_blocker_failure: str = "fail",
    load_blockers: bool = False,
    concurrency_limit: int | None = None,
    concurrency_key: Callable[[InT], str] | None = None,
    rate_limit: str | None = None,
) -> ChainDef[InT, OutT]: ...
@overload
def chain(
    name: str,
    *,
    input: Any,
    output: Any,
    retry: RetryPolicy | None = None,
    priority: int = 0,
    on_blocker_failure: str = "fail",
    load_blockers: bool = False,
    concurrency_limit: int | None = None,
    concurrency_key: Callable[[Any], str] | None = None,
    rate_limit: str | None = None,
) -> ChainDef[Any, Any]: ...
def chain(
    name: str,
    *,
    input: Any,
    output: Any,
    retry: RetryPolicy | None = None,
    priority: int = 0,
    on_blocker_failure: str = "fail",
    load_blockers: bool = False,
    concurrency_limit: int | None = None,
    concurrency_key: Callable[[Any], str] | None = None,
    rate_limit: str | None = None,
) -> ChainDef[Any, Any]:
    """Declare a chain named ``name`` whose first job takes ``input`` and whose last
    job returns ``output``. Raises :class:`~queuert.errors.ValidationError` for a bad
    name or a type that cannot be stored as JSON.

    With ``concurrency_limit``, at most that many jobs of the entry queue run at once
    across every worker; with ``concurrency_key`` too, at most that many per key, the
    key being computed from each chain's input when the chain starts (see
    :mod:`queuert.limits`). With ``rate_limit`` (``"100/min"``, ``"50/s"``,
    ``"1000/h"``), at most that many jobs of the entry queue start per window across
    every worker, per key with ``concurrency_key`` (see :mod:`queuert.rates`).
    ``load_blockers`` is accepted and ignored (deprecated: every job created with
    blockers finds them in ``job.blockers``)."""
    return ChainDef(
        name,
        input=input,
        output=output,
        retry=retry,
        priority=priority,
        on_blocker_failure=on_blocker_failure,
        load_blockers=load_blockers,
        concurrency_limit=concurrency_limit,
        concurrency_key=concurrency_key,
        rate_limit=rate_limit,
    )
