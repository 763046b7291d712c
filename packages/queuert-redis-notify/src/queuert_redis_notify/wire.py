"""What the adapter puts on the wire: channel names, hint keys and payloads.

Every name starts with the adapter's prefix, so several applications (or
tests) can share one Redis without hearing each other.

- job scheduled: channel ``<prefix>scheduled:<queue>``, payload ``"<count>|<hint>"``
- chain completed: channel ``<prefix>chain_completed``, payload = chain id
- lease lost: channel ``<prefix>lease_lost``, payload = job id
- wake hint: key ``<prefix>hint:<hint>`` holding the remaining wake budget
"""

from __future__ import annotations

from dataclasses import dataclass

from queuert.ports.notify import ScheduledSignal


@dataclass(frozen=True, slots=True)
class Names:
    """Channel and key names under one prefix."""

    prefix: str

    def scheduled(self, queue: str) -> str:
        return f"{self.prefix}scheduled:{queue}"

    @property
    def chain_completed(self) -> str:
        return f"{self.prefix}chain_completed"

    @property
    def lease_lost(self) -> str:
        return f"{self.prefix}lease_lost"

    def hint_key(self, hint: str) -> str:
        return f"{self.prefix}hint:{hint}"


def encode_scheduled(count: int, hint: str) -> str:
    """The payload of a job-scheduled signal."""
    return f"{count}|{hint}"


def decode_scheduled(queue: str, payload: str) -> ScheduledSignal:
    """Parse a job-scheduled payload. A payload without a hint (``"3"`` or
    ``"3|"``) gives a signal with ``hint=None``. Raises ``ValueError`` when the
    count is not a positive integer."""
    count_text, _, hint = payload.partition("|")
    count = int(count_text)
    if count < 1:
        raise ValueError(f"job-scheduled count must be positive, got {count}")
    return ScheduledSignal(queue=queue, count=count, hint=hint or None)
