"""What the adapters check before they contact a server (no server needed: the
client below points at a port nothing listens on and is never asked to connect)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from queuert.errors import (
    AdapterError,
    ConfigurationError,
    InvalidTransactionError,
    TransactionClosedError,
    TransientStateError,
    ValidationError,
)
from queuert.ports.state import StateAdapter
from queuert.records import Lease
from queuert_mongodb import MongoNotifyAdapter, MongoStateAdapter

NOWHERE = "mongodb://127.0.0.1:1/?timeoutMS=300"


@pytest_asyncio.fixture
async def client() -> AsyncIterator[AsyncMongoClient[Any]]:
    client: AsyncMongoClient[Any] = AsyncMongoClient(NOWHERE)
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"database": "a.b"}, "database"),
        ({"database": ""}, "database"),
        ({"collection_prefix": "9x"}, "collection_prefix"),
        ({"collection_prefix": "system.x"}, "system."),
        ({"operation_timeout_s": 0}, "operation_timeout_s"),
        ({"operation_timeout_s": True}, "operation_timeout_s"),
    ],
)
@pytest.mark.parametrize("adapter_class", [MongoStateAdapter, MongoNotifyAdapter])
async def test_invalid_options_are_refused(
    client: AsyncMongoClient[Any], adapter_class: Any, options: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigurationError, match=named):
        adapter_class(client, **options)


async def test_a_client_of_another_kind_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="AsyncMongoClient"):
        MongoStateAdapter("mongodb://localhost")  # type: ignore[arg-type]


async def test_timeout_defaults_to_the_clients_own(client: AsyncMongoClient[Any]) -> None:
    assert MongoStateAdapter(client).operation_timeout_s == pytest.approx(0.3)
    assert MongoStateAdapter(client, operation_timeout_s=2).operation_timeout_s == 2.0


async def test_capabilities(client: AsyncMongoClient[Any]) -> None:
    capabilities = MongoStateAdapter(client).capabilities
    assert not capabilities.savepoints
    assert capabilities.row_locks and capabilities.concurrent_transactions
    assert capabilities.multi_process and capabilities.clock_precision_ms == 1.0
    assert capabilities.blockers and capabilities.deduplication
    assert capabilities.concurrency_limits and capabilities.schedules


def test_no_operation_falls_back_to_a_port_default_that_raises() -> None:
    # The port's optional operations raise by default; every one of them that is not
    # SQL-specific is the adapter's own.
    optional = [
        "revoke_chain",
        "resume_job",
        "settle_job",
        "purge_chains",
        "record_worker",
        "remove_worker",
        "list_workers",
        "count_jobs",
        "queue_position",
        "is_transaction_open",
        "check_transaction",
        "create_blocked_jobs",
        "continue_blocked_job",
        "get_blockers",
        "list_dependent_chains",
        "create_deduplicated_jobs",
        "acquire_limited_jobs",
        "start_scheduled_chain",
        "get_last_schedule_slot",
        "get_chain_schedule_slot",
    ]
    for name in optional:
        assert getattr(MongoStateAdapter, name) is not getattr(StateAdapter, name), name
    assert MongoStateAdapter.schema_sql is StateAdapter.schema_sql  # no SQL: migrate()


async def test_transaction_checks_send_nothing(client: AsyncMongoClient[Any]) -> None:
    adapter = MongoStateAdapter(client)
    for wrong in ("a transaction", object(), None):
        assert await adapter.is_transaction_open(tx=wrong) is False  # type: ignore[arg-type]
        with pytest.raises(InvalidTransactionError):
            await adapter.check_transaction(tx=wrong)
    session = client.start_session()
    try:
        assert await adapter.is_transaction_open(tx=session) is False
        with pytest.raises(TransactionClosedError):
            await adapter.check_transaction(tx=session)
    finally:
        await session.end_session()
    assert await adapter.is_transaction_open(tx=session) is False


async def test_settle_takes_exactly_one_outcome(client: AsyncMongoClient[Any]) -> None:
    adapter = MongoStateAdapter(client)
    with pytest.raises(AdapterError, match="exactly one"):
        await adapter.settle_job(tx=None, job_id="j", output=None, next_job=None)


async def test_savepoints_are_refused(client: AsyncMongoClient[Any]) -> None:
    adapter = MongoStateAdapter(client)
    session = client.start_session()
    try:
        with pytest.raises(AdapterError, match="savepoints"):
            adapter.savepoint(tx=session)
    finally:
        await session.end_session()


async def test_tx_that_is_not_a_session_is_refused(client: AsyncMongoClient[Any]) -> None:
    adapter = MongoStateAdapter(client)
    with pytest.raises(ValidationError, match="AsyncClientSession"):
        await adapter.get_job(tx=object(), job_id="j")  # type: ignore[arg-type]


async def test_session_of_another_client_is_refused(client: AsyncMongoClient[Any]) -> None:
    adapter = MongoStateAdapter(client)
    other: AsyncMongoClient[Any] = AsyncMongoClient(NOWHERE)
    session = other.start_session()
    try:
        with pytest.raises(ValidationError, match="another AsyncMongoClient"):
            await adapter.renew_lease(tx=session, lease=Lease("j", "w", 1), lease_ms=10)
    finally:
        await session.end_session()
        await other.close()


async def test_session_without_transaction_is_refused(client: AsyncMongoClient[Any]) -> None:
    adapter = MongoStateAdapter(client)
    session = client.start_session()
    try:
        with pytest.raises(ValidationError, match="no transaction in progress"):
            await adapter.get_job(tx=session, job_id="j")
    finally:
        await session.end_session()


async def test_unreachable_server_is_a_transient_error_in_time(
    client: AsyncMongoClient[Any],
) -> None:
    adapter = MongoStateAdapter(client)
    with pytest.raises(TransientStateError):
        await adapter.get_job(tx=None, job_id="j")
    with pytest.raises(TransientStateError):
        await adapter.migrate()


async def test_notify_publish_to_an_unreachable_server_returns(
    client: AsyncMongoClient[Any],
) -> None:
    adapter = MongoNotifyAdapter(client)
    await adapter.publish_job_scheduled(queue="q", count=1)
    await adapter.close()
    await adapter.close()


async def test_connect_refuses_an_unreachable_server_and_closes_its_client() -> None:
    with pytest.raises(TransientStateError):
        await MongoStateAdapter.connect(NOWHERE)
    with pytest.raises(TransientStateError):
        await MongoNotifyAdapter.connect(NOWHERE)
