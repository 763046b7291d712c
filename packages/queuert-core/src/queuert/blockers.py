"""Fan-in: jobs that wait on other chains (blockers), and how a handler reads
the outputs of the chains its job waited on.

A job started with ``blockers=[handle, ...]`` (``enqueue_job_chain`` or a
finalize's ``enqueue_job``) is ``blocked`` until every blocker chain has
completed, and becomes ``pending`` in the same transaction as the completion of
the last of them. When a blocker chain ends ``failed`` or ``cancelled`` instead,
the blocked job fails in that transaction with a
:class:`~queuert.errors.BlockerFailedError` naming the blocker, and so does its
chain (and, in turn, every job blocked on that chain). Retrying a failed blocker
chain later does not bring a failed dependent back: start a new dependent chain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, overload

from queuert.definitions import ChainDef
from queuert.errors import (
    BlockerFailedError,
    BlockerLimitExceededError,
    JobNotFoundError,
    ValidationError,
)
from queuert.records import BlockerRecord, JobError, JobStatus

if TYPE_CHECKING:
    from queuert.client import ChainHandle

OutT = TypeVar("OutT")

MAX_BLOCKERS = 100
"""The most blocker chains one job may wait on."""


def blocker_ids(blockers: object, chains: dict[str, ChainDef[Any, Any]]) -> list[str]:
    """The chain ids of ``blockers``, checked: a non-empty sequence of handles of
    registered chains, at most :data:`MAX_BLOCKERS`. Raises
    :class:`~queuert.errors.ValidationError` (or
    :class:`~queuert.errors.BlockerLimitExceededError`) naming the bad value."""
    from queuert.client import ChainHandle

    if isinstance(blockers, str | bytes) or not isinstance(blockers, Sequence):
        raise ValidationError(
            f"blockers must be a sequence of chain handles, got {blockers!r:.200}"
        )
    if not blockers:
        raise ValidationError("blockers must name at least one chain; pass None for none")
    if len(blockers) > MAX_BLOCKERS:
        raise BlockerLimitExceededError(
            f"a job may wait on at most {MAX_BLOCKERS} chains, got {len(blockers)} blockers"
        )
    ids: list[str] = []
    for handle in blockers:
        if not isinstance(handle, ChainHandle):
            raise ValidationError(f"blockers must hold ChainHandle objects, got {handle!r:.200}")
        if chains.get(handle.chain.name) is not handle.chain:
            raise ValidationError(f"blocker {handle!r} is a chain that is not registered")
        ids.append(handle.id)
    return ids


class Blocker:
    """One chain the job waited on, as it was when the job's handler read it."""

    __slots__ = ("_record",)

    def __init__(self, record: BlockerRecord) -> None:
        self._record = record

    @property
    def chain_id(self) -> str:
        return self._record.chain_id

    @property
    def chain_name(self) -> str:
        return self._record.chain_name

    @property
    def status(self) -> JobStatus:
        return self._record.status

    def output(self, chain: ChainDef[Any, OutT]) -> OutT:
        """The blocker chain's output decoded to ``chain``'s output type. Raises
        :class:`~queuert.errors.ValidationError` when the blocker is a chain of another
        definition, :class:`~queuert.errors.BlockerFailedError` when it did not
        complete."""
        if not isinstance(chain, ChainDef) or chain.name != self._record.chain_name:
            raise ValidationError(
                f"blocker {self._record.chain_id!r} is a chain {self._record.chain_name!r}, "
                f"not {getattr(chain, 'name', chain)!r:.200}"
            )
        if self._record.status is not JobStatus.COMPLETED or self._record.output is None:
            raise BlockerFailedError(self._record.chain_id, self._record.status.value)
        return chain.output_codec.decode(self._record.output)

    def __repr__(self) -> str:
        record = self._record
        return f"<blocker {record.chain_name!r} {record.chain_id} {record.status.value}>"


class Blockers(Sequence[Blocker]):
    """The chains a job waited on, in the order they were given."""

    __slots__ = ("_items",)

    def __init__(self, records: Sequence[BlockerRecord]) -> None:
        self._items = [Blocker(record) for record in records]

    def outputs(self, chain: ChainDef[Any, OutT]) -> list[OutT]:
        """The outputs of the blockers that are chains of ``chain``, in order, decoded
        to its output type (raises as :meth:`Blocker.output`)."""
        return [b.output(chain) for b in self._items if b.chain_name == chain.name]

    def output_of(self, handle: ChainHandle[OutT]) -> OutT:
        """The output of the blocker chain ``handle`` started. Raises
        :class:`~queuert.errors.ValidationError` when it is not one of the blockers."""
        for blocker in self._items:
            if blocker.chain_id == handle.id:
                return blocker.output(handle.chain)
        raise ValidationError(f"chain {handle.id!r} is not a blocker of this job")

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Blocker: ...
    @overload
    def __getitem__(self, index: slice) -> list[Blocker]: ...
    def __getitem__(self, index: int | slice) -> Blocker | list[Blocker]:
        return self._items[index]

    def __iter__(self) -> Iterator[Blocker]:
        return iter(self._items)

    def __repr__(self) -> str:
        return repr(self._items)


_ENDED_BADLY = (JobStatus.FAILED, JobStatus.CANCELLED)

BLOCKER_FAILED_TYPE = f"{BlockerFailedError.__module__}.{BlockerFailedError.__qualname__}"
"""The error type a state adapter records on a job whose blocker did not complete."""


def blocker_error(chain_id: str, status: str) -> JobError:
    """The error a state adapter records on a job failed because its blocker chain
    ``chain_id`` ended ``status`` (SQL adapters build the same text)."""
    return JobError(type=BLOCKER_FAILED_TYPE, message=str(BlockerFailedError(chain_id, status)))


def initial_wait(
    statuses: Mapping[str, str], chain_ids: Sequence[str], run_on_failure: bool = False
) -> tuple[JobStatus, int, JobError | None]:
    """What a job created waiting on ``chain_ids`` starts as, given the status of
    each chain's last job (``statuses``, by chain id): ``failed`` with
    :func:`blocker_error` for the first blocker that ended failed or cancelled, else
    ``blocked`` with the number of distinct blockers not completed, or ``pending``
    when there is none. With ``run_on_failure`` a failed or cancelled blocker
    counts as ended, like a completed one. Raises
    :class:`~queuert.errors.JobNotFoundError` naming the first of ``chain_ids``
    missing from ``statuses``. For adapter implementations."""
    for chain_id in chain_ids:
        if chain_id not in statuses:
            raise JobNotFoundError(f"blocker chain {chain_id!r} does not exist")
    distinct = list(dict.fromkeys(chain_ids))
    for chain_id in distinct:
        if statuses[chain_id] in _ENDED_BADLY and not run_on_failure:
            return JobStatus.FAILED, 0, blocker_error(chain_id, str(statuses[chain_id]))
    ended = (JobStatus.COMPLETED, *_ENDED_BADLY) if run_on_failure else (JobStatus.COMPLETED,)
    left = sum(1 for chain_id in distinct if statuses[chain_id] not in ended)
    return (JobStatus.BLOCKED if left else JobStatus.PENDING), left, None
