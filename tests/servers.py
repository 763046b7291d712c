"""Where the test servers are, and what to do when one is unreachable.

Outside CI a missing server skips its tests with a one-line reason; with
``CI=true`` it fails them, because CI must never pass by skipping.
"""

from __future__ import annotations

import os
import socket
from typing import NoReturn
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get(
    "QUEUERT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("QUEUERT_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
MONGODB_URL = os.environ.get("QUEUERT_TEST_MONGODB_URL")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    try:
        with socket.create_connection((host, parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def require_server(name: str, url: str, default_port: int) -> None:
    """Skip (or fail under CI) the calling test when the server does not answer."""
    if _reachable(url, default_port):
        return
    message = f"{name} is unreachable at {url}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: the server must be running)", pytrace=False)
    pytest.skip(message)


def missing_tool(message: str) -> NoReturn:
    """Skip the calling test because a server binary it needs is missing (fail it
    under CI)."""
    if in_ci():
        pytest.fail(f"{message} (CI=true: it must be installed)", pytrace=False)
    pytest.skip(message)


def require_postgres() -> str:
    require_server("PostgreSQL", POSTGRES_URL, 5432)
    return POSTGRES_URL


def require_redis() -> str:
    require_server("Redis", REDIS_URL, 6379)
    return REDIS_URL


def require_mongodb() -> str:
    """MongoDB's rule differs (no server can be installed where CI runs): see
    :func:`tests.mongodb.server.require_mongodb`."""
    from tests.mongodb.server import require_mongodb

    return require_mongodb()
