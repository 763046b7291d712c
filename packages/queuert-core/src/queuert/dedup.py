"""Deduplication of chain starts: one chain per key in scope, enforced by the store.

``enqueue_job_chain(tx, chain, input, dedup_key="upload-42")`` starts no new
chain while a chain of the same definition holds the key in scope, and returns
that chain's handle with ``handle.deduplicated`` set instead. The scope is
``"incomplete"`` (default: a chain that has not ended holds the key) or ``"any"``
(any chain, or with ``dedup_window`` only one started within that window). Two
transactions starting one key at the same moment, in any processes, start one
chain: the state adapter takes the key through a unique index (or its store's
equivalent) in the same transaction as the chain's first job.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from queuert.errors import ValidationError
from queuert.records import DedupKey, DedupScope

MAX_KEY_LENGTH = 512
"""The longest deduplication key, in characters."""

_MAX_WINDOW = timedelta(days=365_000)


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH or "\x00" in key:
        raise ValidationError(
            f"dedup_key must be a string of 1-{MAX_KEY_LENGTH} characters without NUL, "
            f"got {key!r:.200}"
        )
    return key


def dedup_requests(
    keys: Sequence[str], count: int, scope: object, window: object
) -> list[DedupKey]:
    """One :class:`~queuert.records.DedupKey` per chain start, checked: ``count``
    keys, a known scope, a positive window only with scope ``"any"``. Raises
    :class:`~queuert.errors.ValidationError` naming the bad value."""
    if isinstance(keys, str) or not isinstance(keys, Sequence):
        raise ValidationError(f"dedup keys must be a sequence of strings, got {keys!r:.200}")
    if len(keys) != count:
        raise ValidationError(f"got {len(keys)} dedup keys for {count} inputs")
    try:
        checked_scope = DedupScope(str(scope)) if isinstance(scope, str) else DedupScope("")
    except ValueError:
        raise ValidationError(
            f"dedup_scope must be 'incomplete' or 'any', got {scope!r:.200}"
        ) from None
    window_ms: int | None = None
    if window is not None:
        if not isinstance(window, timedelta) or not timedelta(0) < window <= _MAX_WINDOW:
            raise ValidationError(
                f"dedup_window must be a positive timedelta (or None), got {window!r:.200}"
            )
        if checked_scope is not DedupScope.ANY:
            raise ValidationError("dedup_window applies to dedup_scope='any' only")
        window_ms = max(1, int(window.total_seconds() * 1000))
    return [DedupKey(_check_key(key), checked_scope, window_ms) for key in keys]
