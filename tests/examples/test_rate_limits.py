"""The rate limits example: each customer's calls start at most two per second of
the clock while the customers share none of their windows, and its declarations
carry the rates and keys the page describes."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import queuert
from examples.rate_limits import (
    ApiCall,
    Export,
    Notice,
    api,
    email,
    export,
    new_app,
    notify,
    register_api_handler,
)


async def test_each_customer_starts_at_most_two_calls_a_second() -> None:
    app = await new_app()
    try:
        starts: dict[str, list[float]] = {}
        worker = app.worker(concurrency=10, poll_interval=30.0)
        register_api_handler(worker, starts)
        calls = [ApiCall(customer, n) for n in range(4) for customer in ("alice", "bob")]
        async with worker:
            handles = await app.enqueue_job_chains(None, api, calls)
            for handle in handles:
                await app.wait_for_chain(handle, timeout=30)
        assert sorted(starts) == ["alice", "bob"]
        for times in starts.values():
            assert len(times) == 4
            assert max(Counter(math.floor(t) for t in times).values()) <= 2
        # The customers' windows are their own: both start in the first second.
        first = min(min(times) for times in starts.values())
        assert all(min(times) - first < 0.5 for times in starts.values())
    finally:
        await app.close()


def test_the_declarations_carry_their_rates_and_keys() -> None:
    assert str(email.rate) == "100/min" and email.concurrency_key is None
    assert api.rate is not None and api.rate.per_key
    assert export.limit is not None and export.limit.limit == 3 and str(export.rate) == "10/s"
    assert notify.rate is not None and notify.rate.per_key
    key_of: Any = notify.concurrency_key
    assert key_of(Notice("acme")) == "acme"
    assert isinstance(export, queuert.ChainDef) and Export("x").customer_id == "x"
