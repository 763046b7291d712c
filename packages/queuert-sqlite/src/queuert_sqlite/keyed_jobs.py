"""Statements writing a job's concurrency key where the plain statements write none:
a continuation whose step declares a per-key limit (schema version 5's column).
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=16)
def set_concurrency_key(jobs: str) -> str:
    """Parameters: the key, the job's id (a continuation, inserted without a key)."""
    return f"UPDATE {jobs} SET concurrency_key = ? WHERE id = ?"
