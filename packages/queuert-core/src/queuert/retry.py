"""Retry policy: how many attempts a job gets and how long it waits between them."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from queuert.errors import ValidationError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    The delay after attempt ``n`` (1-based) is
    ``min(max_delay_ms, initial_delay_ms * multiplier ** (n - 1))``, then scaled
    by a random factor in ``[1 - jitter, 1 + jitter]`` and capped again at
    ``max_delay_ms``. After ``max_attempts`` attempts the job fails for good.
    """

    max_attempts: int = 5
    initial_delay_ms: int = 1_000
    max_delay_ms: int = 300_000
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValidationError(
                f"max_attempts must be an integer >= 1, got {self.max_attempts!r}"
            )
        if self.initial_delay_ms < 0 or self.max_delay_ms < self.initial_delay_ms:
            raise ValidationError(
                "retry delays must satisfy 0 <= initial_delay_ms <= max_delay_ms, got "
                f"initial_delay_ms={self.initial_delay_ms!r}, max_delay_ms={self.max_delay_ms!r}"
            )
        if self.multiplier < 1:
            raise ValidationError(f"multiplier must be >= 1, got {self.multiplier!r}")
        if not 0 <= self.jitter <= 1:
            raise ValidationError(f"jitter must be within [0, 1], got {self.jitter!r}")

    def delay_ms(self, attempt: int, rand: Callable[[], float] = random.random) -> int:
        """Milliseconds to wait after failed attempt number ``attempt`` (1-based)."""
        base = min(
            float(self.max_delay_ms), self.initial_delay_ms * self.multiplier ** (attempt - 1)
        )
        factor = 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return int(min(self.max_delay_ms, base * factor))
