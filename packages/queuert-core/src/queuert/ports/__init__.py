"""The two ports every adapter implements: state (storage) and notify (wake-ups)."""

from queuert.ports.notify import NotifyAdapter, NotifyCapabilities, ScheduledSignal, Subscription
from queuert.ports.state import StateAdapter, StateCapabilities

__all__ = [
    "NotifyAdapter",
    "NotifyCapabilities",
    "ScheduledSignal",
    "StateAdapter",
    "StateCapabilities",
    "Subscription",
]
