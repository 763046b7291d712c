"""The MongoDB replica set the tests run on, named by ``QUEUERT_TEST_MONGODB_URL``.

No MongoDB server can be installed where this repository's CI runs, so the rule
differs from the other servers': without the variable every MongoDB test skips
with one line, CI included; with it set, a server that does not answer, or that
is not a replica set, fails the tests instead of skipping them.
"""

from __future__ import annotations

import functools
import os
from urllib.parse import urlsplit, urlunsplit
from uuid import uuid4

import pytest
from pymongo import AsyncMongoClient, MongoClient
from pymongo.errors import OperationFailure, PyMongoError

from queuert.urls import redact_url
from queuert_mongodb.deployment import deployment_problem

ENV = "QUEUERT_TEST_MONGODB_URL"


@functools.cache
def _problem(url: str) -> str | None:
    """Why the server at ``url`` cannot run the tests (``None``: it can). Asked once
    per process."""
    client: MongoClient[dict[str, object]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        try:
            hello = client.admin.command("hello")
        except OperationFailure:
            hello = client.admin.command("isMaster")  # servers before 4.4.2
    except PyMongoError as exc:
        return f"MongoDB is unreachable at {redact_url(url)}: {exc}"
    finally:
        client.close()
    return deployment_problem(hello)


def require_mongodb() -> str:
    """The replica set URL; skips the calling test when ``QUEUERT_TEST_MONGODB_URL`` is
    unset and fails it when the server named there cannot run the tests."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        pytest.skip(f"MongoDB tests need {ENV} pointing to a replica set")
    problem = _problem(url)
    if problem is not None:
        pytest.fail(f"{ENV} is set but {problem}", pytrace=False)
    return url


def unique_database(prefix: str = "qt") -> str:
    """A database name no other test uses."""
    return f"{prefix}_{uuid4().hex[:16]}"


def with_database(url: str, database: str) -> str:
    """``url`` naming ``database`` in its path (its query kept)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


async def drop_database(url: str, database: str) -> None:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=5000
    )
    try:
        await client.drop_database(database)
    finally:
        await client.close()
