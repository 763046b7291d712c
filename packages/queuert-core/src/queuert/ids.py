"""Time-ordered identifiers for jobs and chains."""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_prefix = ""
# Seeded from the OS per process (and again after fork), so ids of processes that
# start in the same millisecond still differ in their 62 random bits.
_random = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


def new_id() -> str:
    """A UUIDv7 string. Ids made later in one process sort after earlier ones, so
    ``id`` order is creation order and serves as the keyset for pagination."""
    global _last_ms, _counter, _prefix
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = _random.getrandbits(10)
            _prefix = _ms_prefix(ms)
        else:
            # Same (or earlier, after a clock step) millisecond: keep order with a counter.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
                _prefix = _ms_prefix(_last_ms)
        counter = _counter
        prefix = _prefix
        rand = _random.getrandbits(62)
    # Version 7 and the counter, then the variant (0b10) and 62 random bits.
    tail = f"{0x8000000000000000 | rand:016x}"
    return f"{prefix}7{counter:03x}-{tail[:4]}-{tail[4:]}"


def _ms_prefix(ms: int) -> str:
    """The first 48 bits (the millisecond), formatted with their dashes."""
    h = f"{ms & 0xFFFFFFFFFFFF:012x}"
    return f"{h[:8]}-{h[8:]}-"
