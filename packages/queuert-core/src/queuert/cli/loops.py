"""The event loop the command runs on: asyncio's own, or uvloop (the ``uvloop`` extra)."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from queuert.errors import ConfigurationError

T = TypeVar("T")

UVLOOP_HINT = "install the uvloop extra: pip install 'queuert-core[uvloop]'"


def run_on(main: Callable[[], Coroutine[Any, Any, T]], *, uvloop: bool) -> T:
    """Run ``main()`` to completion on a new event loop: uvloop's with ``uvloop``,
    else asyncio's. Raises :class:`~queuert.errors.ConfigurationError` (before
    anything runs) when uvloop is asked for but not installed."""
    if not uvloop:
        return asyncio.run(main())
    try:
        # Imported by name: uvloop is an optional dependency.
        module = importlib.import_module("uvloop")
    except ImportError:
        raise ConfigurationError(f"--uvloop needs uvloop: {UVLOOP_HINT}") from None
    result: T = module.run(main())
    return result
