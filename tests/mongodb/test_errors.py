"""Translation of PyMongo errors into queuert errors (no server needed)."""

from __future__ import annotations

import pytest
from bson.errors import InvalidDocument
from pymongo.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
)

from queuert.errors import AdapterError, InputValidationError, TransientStateError
from queuert_mongodb.errors import KeyRace, translate, upsert_by_key


def test_write_conflicts_and_aborted_transactions_are_transient() -> None:
    assert isinstance(translate(OperationFailure("conflict", 112)), TransientStateError)
    labelled = OperationFailure(
        "no such transaction", 251, {"errorLabels": ["TransientTransactionError"]}
    )
    assert isinstance(translate(labelled), TransientStateError)


def test_lost_connections_and_timeouts_are_transient() -> None:
    for exc in (
        AutoReconnect("reset"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("no primary"),
        OperationFailure("stepped down", 189),
    ):
        assert isinstance(translate(exc), TransientStateError), exc


def test_duplicate_keys_are_adapter_errors_that_say_so() -> None:
    single = translate(DuplicateKeyError("E11000 duplicate key", 11000))
    assert isinstance(single, AdapterError) and "duplicate key" in str(single)
    bulk = BulkWriteError({"writeErrors": [{"code": 11000, "errmsg": "E11000"}]})
    assert isinstance(translate(bulk), AdapterError)
    assert "duplicate key" in str(translate(bulk))


def test_values_bson_cannot_hold_are_input_errors() -> None:
    assert isinstance(translate(InvalidDocument("cannot encode")), InputValidationError)
    assert isinstance(translate(OverflowError("int too big")), InputValidationError)


def test_other_server_errors_are_adapter_errors() -> None:
    translated = translate(OperationFailure("bad value", 2))
    assert isinstance(translated, AdapterError)
    assert not isinstance(translated, TransientStateError)


async def test_a_key_inserted_by_a_concurrent_transaction_is_a_race_to_run_again() -> None:
    async def duplicate() -> None:
        raise DuplicateKeyError("E11000 duplicate key", 11000)

    with pytest.raises(KeyRace) as raised:
        await upsert_by_key(duplicate())
    assert isinstance(raised.value, TransientStateError)
    assert isinstance(raised.value.__cause__, DuplicateKeyError)

    async def conflict() -> None:
        raise OperationFailure("conflict", 112)

    with pytest.raises(OperationFailure):
        await upsert_by_key(conflict())

    async def upserted() -> str:
        return "id"

    assert await upsert_by_key(upserted()) == "id"
