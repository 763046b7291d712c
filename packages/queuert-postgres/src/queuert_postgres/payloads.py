"""Wire format of the NOTIFY payloads.

A key (queue name, chain id or job id) is sent as ``=<key>``; one too long for
NOTIFY's payload limit is sent as ``#<sha256 of key>`` and reaches only
listeners subscribed to that exact key. Job-scheduled payloads start with the
count: ``<count>=<queue>``.
"""

from __future__ import annotations

import hashlib

MAX_PAYLOAD_BYTES = 7999
"""NOTIFY payloads must be shorter than 8000 bytes."""

LONG_KEY_BYTES = 7900
"""Keys at least this long may be sent hashed; listeners index them by hash too."""


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def encode(key: str, *, count: int | None = None) -> str:
    head = "" if count is None else str(count)
    payload = f"{head}={key}"
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        payload = f"{head}#{key_hash(key)}"
    return payload


def decode(payload: str, *, counted: bool) -> tuple[int, str, bool] | None:
    """``(count, key, hashed)``, count 1 when not ``counted``; ``None`` if malformed."""
    eq, sharp = payload.find("="), payload.find("#")
    cut = eq if sharp < 0 or (0 <= eq < sharp) else sharp
    if cut < 0:
        return None
    count = 1
    if counted:
        try:
            count = int(payload[:cut])
        except ValueError:
            return None
    elif cut != 0:
        return None
    return count, payload[cut + 1 :], payload[cut] == "#"
