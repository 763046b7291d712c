"""Notifications that wait for the application's transaction to commit."""

from __future__ import annotations

import contextvars
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PendingNotifications:
    """Signals collected inside ``Queuert.with_notify`` and sent when it exits."""

    scheduled: Counter[str] = field(default_factory=Counter)
    completed_chains: list[str] = field(default_factory=list)
    lease_lost: list[str] = field(default_factory=list)

    def merge(self, other: PendingNotifications) -> None:
        self.scheduled.update(other.scheduled)
        self.completed_chains.extend(other.completed_chains)
        self.lease_lost.extend(other.lease_lost)


pending_notifications: contextvars.ContextVar[PendingNotifications | None] = contextvars.ContextVar(
    "queuert_pending_notifications", default=None
)
