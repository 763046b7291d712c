"""Time-ordered identifiers for jobs and chains."""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Seeded from the OS per process (and again after fork), so ids of processes that
# start in the same millisecond still differ in their 62 random bits.
_random = random.Random(os.urandom(16))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(16)))


def new_id() -> str:
    """A UUIDv7 string. Ids made later in one process sort after earlier ones, so
    ``id`` order is creation order and serves as the keyset for pagination."""
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms = ms
            _counter = _random.getrandbits(10)
        else:
            # Same (or earlier, after a clock step) millisecond: keep order with a counter.
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
            ms = _last_ms
        counter = _counter
        rand = _random.getrandbits(62)
    value = (ms & 0xFFFFFFFFFFFF) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
