"""Clients, sessions and transactions: what both adapters share about talking to a
deployment."""

from __future__ import annotations

import asyncio
import random
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import ConfigurationError as DriverConfigurationError
from pymongo.errors import InvalidURI, OperationFailure, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from queuert.errors import ConfigurationError, InvalidTransactionError, TransactionClosedError
from queuert.urls import redact_url
from queuert_mongodb.deployment import deployment_problem
from queuert_mongodb.errors import DRIVER_ERRORS, KeyRace, translate
from queuert_mongodb.urls import MongoUrl, parse_url

T = TypeVar("T")

DEFAULT_TIMEOUT_S = 10.0


def operation_timeout(client: AsyncMongoClient[Any], value: object) -> float:
    """``value`` when given, else the client's own ``timeoutMS``, else
    :data:`DEFAULT_TIMEOUT_S`; raises :class:`~queuert.errors.ConfigurationError` unless
    it is a positive number of seconds."""
    if value is None:
        value = client.options.timeout or DEFAULT_TIMEOUT_S
    return validate_timeout(value)


def validate_timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"operation_timeout_s must be a positive number: {value!r}")
    return float(value)


def validate_client(client: object) -> AsyncMongoClient[Any]:
    if not isinstance(client, AsyncMongoClient):
        raise ConfigurationError(
            f"client must be a pymongo AsyncMongoClient, got {type(client).__name__}"
        )
    return client


def open_client(url: str, options: dict[str, Any]) -> tuple[AsyncMongoClient[Any], MongoUrl]:
    """A client for ``url`` (which it does not contact yet) and the parsed URL. Raises
    :class:`~queuert.errors.ConfigurationError` for an invalid URL or options, including
    those PyMongo would only warn about and ignore."""
    parsed = parse_url(url)
    options.setdefault("appname", "queuert")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            client: AsyncMongoClient[Any] = AsyncMongoClient(parsed.client_url, **options)
    except (DriverConfigurationError, InvalidURI, ValueError, TypeError, UserWarning) as exc:
        raise ConfigurationError(
            f"invalid MongoDB URL or options {redact_url(url)!r}: {str(exc)[:200]}"
        ) from None
    return client, parsed


async def check_deployment(client: AsyncMongoClient[Any], timeout_s: float, purpose: str) -> None:
    """Raise :class:`~queuert.errors.ConfigurationError` unless the server is a replica
    set member or a mongos of MongoDB 4.4 or newer;
    :class:`~queuert.errors.TransientStateError` when it cannot be reached."""
    try:
        with pymongo.timeout(timeout_s):
            try:
                hello = await client.admin.command("hello")
            except OperationFailure:
                # Servers before 4.4.2 know the command by its former name.
                hello = await client.admin.command("isMaster")
    except DRIVER_ERRORS as exc:
        raise translate(exc) from exc
    problem = deployment_problem(hello)
    if problem is not None:
        raise ConfigurationError(f"MongoDB cannot {purpose}: {problem}")


class Sessions:
    """Sessions and transactions on one client, every call under a timeout."""

    def __init__(self, client: AsyncMongoClient[Any], timeout_s: float) -> None:
        self.client = client
        self.timeout_s = timeout_s

    def is_open(self, tx: object) -> bool:
        """Whether ``tx`` is a session (of any client) inside a transaction that has not
        ended. Sends nothing."""
        return isinstance(tx, AsyncClientSession) and not tx.has_ended and tx.in_transaction

    def validate(self, tx: object) -> AsyncClientSession:
        """``tx`` when it is a session of this client inside a transaction; raises
        :class:`~queuert.errors.InvalidTransactionError` otherwise
        (:class:`~queuert.errors.TransactionClosedError` when its transaction ended)."""
        if not isinstance(tx, AsyncClientSession):
            raise InvalidTransactionError(
                f"tx must be a pymongo AsyncClientSession, got {type(tx).__name__}"
            )
        if tx.client is not self.client:
            raise InvalidTransactionError(
                "tx is a session of another AsyncMongoClient; start it from adapter.client"
            )
        if not self.is_open(tx):
            raise TransactionClosedError(
                "tx has no transaction in progress: pass a session inside "
                "`async with await session.start_transaction()`"
            )
        return tx

    @asynccontextmanager
    async def raw_transaction(self) -> AsyncIterator[AsyncClientSession]:
        """A transaction (snapshot reads, majority writes) on a new session, committed
        when the block exits normally and aborted when it raises; driver errors
        propagate untranslated."""
        session = self.client.start_session()
        try:
            await session.start_transaction(
                read_concern=ReadConcern("snapshot"), write_concern=WriteConcern("majority")
            )
            try:
                yield session
            except BaseException:
                if session.in_transaction:
                    with pymongo.timeout(self.timeout_s):
                        await session.abort_transaction()
                raise
            with pymongo.timeout(self.timeout_s):
                await session.commit_transaction()
        finally:
            with pymongo.timeout(self.timeout_s):
                await session.end_session()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncClientSession]:
        """:meth:`raw_transaction` with driver errors raised as queuert errors."""
        try:
            async with self.raw_transaction() as session:
                yield session
        except DRIVER_ERRORS as exc:
            raise translate(exc) from exc

    async def in_own_transaction(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction of its own and commit it. A transient
        transaction error (a write conflict with another transaction) or a
        :class:`KeyRace` runs the whole transaction again, with backoff, until the
        timeout; a commit whose outcome is unknown is not run again."""
        deadline = time.monotonic() + self.timeout_s
        delay = 0.002
        while True:
            try:
                with pymongo.timeout(max(0.001, deadline - time.monotonic())):
                    async with self.raw_transaction() as session:
                        result = await work(session)
                return result
            except KeyRace:
                if time.monotonic() + delay >= deadline:
                    raise
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.1)
            except PyMongoError as exc:
                retry = exc.has_error_label("TransientTransactionError")
                if retry and time.monotonic() + delay < deadline:
                    await asyncio.sleep(delay * (0.5 + random.random()))
                    delay = min(delay * 2, 0.1)
                    continue
                raise translate(exc) from exc
            except DRIVER_ERRORS as exc:
                raise translate(exc) from exc
