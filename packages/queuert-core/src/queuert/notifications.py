"""Notifications that wait for the application's transaction to commit."""

from __future__ import annotations

import asyncio
import contextvars
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class PendingNotifications:
    """Signals collected inside ``Queuert.with_notify`` and sent when it exits."""

    scheduled: Counter[str] = field(default_factory=Counter)
    completed_chains: list[str] = field(default_factory=list)
    lease_lost: list[str] = field(default_factory=list)
    owner: asyncio.Task[Any] | None = field(default=None, compare=False, repr=False)
    """The task that opened the ``with_notify`` block collecting these: only its own
    signals are held back. Tasks it starts inherit the context variable, yet what
    they publish (a worker started inside the block, say) leaves at once."""

    def merge(self, other: PendingNotifications) -> None:
        self.scheduled.update(other.scheduled)
        self.completed_chains.extend(other.completed_chains)
        self.lease_lost.extend(other.lease_lost)


pending_notifications: contextvars.ContextVar[PendingNotifications | None] = contextvars.ContextVar(
    "queuert_pending_notifications", default=None
)


def collector() -> PendingNotifications | None:
    """The ``with_notify`` collection of the current task, if it opened one."""
    outer = pending_notifications.get()
    if outer is None or outer.owner is not asyncio.current_task():
        return None
    return outer
