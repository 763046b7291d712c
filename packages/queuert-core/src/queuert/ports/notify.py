"""The wake-up port.

A notify adapter carries three signals between processes: *job scheduled*
(by queue name, with a count), *chain completed* (by chain id) and *lease
lost* (by job id). Notifications are hints: correctness never depends on
them, so publishing to a transport that is down logs and returns instead of
raising, and workers fall back to polling.

Payloads on the wire are plain strings. Each listener is called in isolation:
an exception in one is logged and does not stop the others or the
subscription.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queuert.ports.sync import SyncPublisher


@dataclass(frozen=True, slots=True)
class NotifyCapabilities:
    """What a notify adapter can do.

    - ``cross_process``: signals reach other processes (false for in-process).
    - ``wake_hints``: :meth:`NotifyAdapter.claim_wake` budgets wake-ups so that N
      new jobs wake about N idle listeners instead of all of them.
    """

    cross_process: bool = True
    wake_hints: bool = False


@dataclass(frozen=True, slots=True)
class ScheduledSignal:
    """``count`` jobs became eligible on ``queue``. ``hint`` names the wake budget
    to claim from (``None`` when the adapter keeps none)."""

    queue: str
    count: int
    hint: str | None = None


ScheduledListener = Callable[[ScheduledSignal], Awaitable[None]]
IdListener = Callable[[str], Awaitable[None]]


class Subscription(ABC):
    """A live subscription. :meth:`unsubscribe` is idempotent."""

    @abstractmethod
    async def unsubscribe(self) -> None:
        """Stop delivering to this listener."""


class NotifyAdapter(ABC):
    """The notify port."""

    capabilities: NotifyCapabilities = NotifyCapabilities()

    @abstractmethod
    async def publish_job_scheduled(self, *, queue: str, count: int) -> None:
        """Announce that ``count`` jobs became eligible on ``queue``."""

    @abstractmethod
    async def publish_chain_completed(self, *, chain_id: str) -> None:
        """Announce that the chain reached a terminal status."""

    @abstractmethod
    async def publish_lease_lost(self, *, job_id: str) -> None:
        """Announce that the lease of the job was taken away from its holder."""

    @abstractmethod
    async def subscribe_job_scheduled(
        self, *, queues: Sequence[str], listener: ScheduledListener
    ) -> Subscription:
        """Call ``listener`` for every job-scheduled signal on one of ``queues``.
        The subscription is active when this returns."""

    @abstractmethod
    async def subscribe_chain_completed(
        self, *, chain_id: str | None, listener: IdListener
    ) -> Subscription:
        """Call ``listener(chain_id)`` when that chain (any chain for ``None``)
        completes."""

    @abstractmethod
    async def subscribe_lease_lost(
        self, *, job_id: str | None, listener: IdListener
    ) -> Subscription:
        """Call ``listener(job_id)`` when that job's (any job's for ``None``) lease is
        lost."""

    async def claim_wake(self, *, signal: ScheduledSignal) -> bool:
        """Consume one unit of the signal's wake budget. ``True`` means the caller
        should look for work; an adapter without hints (or a hint that expired)
        always says ``True``."""
        return True

    @abstractmethod
    async def close(self) -> None:
        """Stop every subscription and release connections. Idempotent."""

    def sync_publisher(self) -> SyncPublisher | None:
        """A publisher of this adapter's signals for synchronous callers (see
        :mod:`queuert.ports.sync`), or ``None`` when it has none (the default): their
        signals are then not sent, and workers find the jobs at their next poll."""
        return None
