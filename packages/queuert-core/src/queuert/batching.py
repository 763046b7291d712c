"""Coalescing of concurrent single-job writes into one, for state adapters.

Lease-guarded operations called without a transaction each need a transaction
(and, on a server, a round trip) of their own. When many run at once (a worker
completing dozens of jobs), those waiting while one batch is in flight are
written together as the next batch: one transaction, one commit. Each job's
outcome is still its own: a lease that no longer matches only leaves that job
out, and when the shared write fails, each job is written on its own, so that
one failing job fails only its own caller. A job's completion is durable before
its caller returns, as without batching.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from queuert.errors import TransientStateError

Item = TypeVar("Item")
Result = TypeVar("Result")

MAX_BATCH = 500


class Batcher(Generic[Item, Result]):
    """Runs ``run(items)`` for the items submitted meanwhile; ``run`` returns the result
    of each item by key (an item without a result gets ``None``; an exception as
    result is raised to that item's caller only)."""

    def __init__(
        self,
        run: Callable[[Sequence[Item]], Awaitable[dict[str, Result | Exception]]],
        key: Callable[[Item], str],
    ) -> None:
        self._run = run
        self._key = key
        self._pending: list[tuple[Item, asyncio.Future[Result | None]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result | None:
        future: asyncio.Future[Result | None] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush(), name="queuert-batch")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch: list[tuple[Item, asyncio.Future[Result | None]]] = []
            rest: list[tuple[Item, asyncio.Future[Result | None]]] = []
            keys: set[str] = set()
            for entry in self._pending:
                key = self._key(entry[0])
                # A job appears once per statement; a repeat waits for the next batch
                # so that each call sees the outcome of its own attempt.
                if key in keys or len(batch) >= MAX_BATCH:
                    rest.append(entry)
                else:
                    keys.add(key)
                    batch.append(entry)
            self._pending = rest
            live = [(item, future) for item, future in batch if not future.cancelled()]
            if not live:
                continue
            try:
                results = await self._run_batch([item for item, _ in live])
            except BaseException:
                self.cancel_pending(live)
                raise
            for item, future in live:
                if not future.done():
                    result = results.get(self._key(item))
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)

    async def _run_batch(self, items: list[Item]) -> dict[str, Result | Exception]:
        """The results of ``items``; when the shared statement fails, each item is run on
        its own, so that one bad item fails only its own caller."""
        try:
            return await self._run(items)
        except TransientStateError as exc:
            # The shared write may have committed unacknowledged: writing each again
            # would find its lease gone. Each caller gets the transient error to retry.
            return {self._key(item): exc for item in items}
        except Exception as exc:
            if len(items) == 1:
                return {self._key(items[0]): exc}
        results: dict[str, Result | Exception] = {}
        for item in items:
            try:
                results.update(await self._run([item]))
            except Exception as exc:
                results[self._key(item)] = exc
        return results

    def cancel_pending(
        self, extra: Sequence[tuple[Item, asyncio.Future[Result | None]]] = ()
    ) -> None:
        """Cancel every call still waiting (the adapter is closing)."""
        for _, future in [*extra, *self._pending]:
            future.cancel()
        self._pending = []
