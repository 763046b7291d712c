"""Running the adapters' coroutines from Django's synchronous code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine ``make()`` returns to its end from synchronous code: on this
    thread when it runs no event loop, else on a thread of its own (waiting for it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(make))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(_awaited(make))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="queuert-django")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()
