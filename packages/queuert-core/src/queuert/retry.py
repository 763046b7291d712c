"""Retry policy: how many attempts a job gets and how long it waits between them."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from queuert.errors import ValidationError
from queuert.validation import check_duration_ms, check_finite, check_int32


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter.

    The delay after attempt ``n`` (1-based) is
    ``min(max_delay_ms, initial_delay_ms * multiplier ** (n - 1))``, then scaled
    by a random factor in ``[1 - jitter, 1 + jitter]`` and capped again at
    ``max_delay_ms``. After ``max_attempts`` attempts the job fails for good.

    Raises :class:`~queuert.errors.ValidationError` at construction unless
    ``max_attempts`` is within ``1..2**31-1``, both delays are integers of
    milliseconds within ``0..MAX_DURATION_MS`` (see :mod:`queuert.validation`)
    with ``initial_delay_ms <= max_delay_ms``, ``multiplier`` is finite within
    ``1..1e6`` and ``jitter`` within ``0..1``.
    """

    max_attempts: int = 5
    initial_delay_ms: int = 1_000
    max_delay_ms: int = 300_000
    multiplier: float = 2.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        check_int32("max_attempts", self.max_attempts, minimum=1)
        check_duration_ms("initial_delay_ms", self.initial_delay_ms, minimum=0)
        check_duration_ms("max_delay_ms", self.max_delay_ms, minimum=0)
        if self.max_delay_ms < self.initial_delay_ms:
            raise ValidationError(
                "retry delays must satisfy initial_delay_ms <= max_delay_ms, got "
                f"initial_delay_ms={self.initial_delay_ms!r}, max_delay_ms={self.max_delay_ms!r}"
            )
        check_finite("multiplier", self.multiplier, minimum=1, maximum=1e6)
        check_finite("jitter", self.jitter, minimum=0, maximum=1)

    def delay_ms(self, attempt: int, rand: Callable[[], float] = random.random) -> int:
        """Milliseconds to wait after failed attempt number ``attempt`` (1-based),
        within ``0..max_delay_ms``."""
        try:
            grown = self.initial_delay_ms * self.multiplier ** (attempt - 1)
        except OverflowError:
            grown = math.inf
        base = min(float(self.max_delay_ms), grown)
        factor = 1.0 + self.jitter * (2.0 * rand() - 1.0)
        return max(0, int(min(self.max_delay_ms, base * factor)))
