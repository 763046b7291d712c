"""Translation of PyMongo errors into queuert errors."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

from bson.errors import BSONError
from pymongo.errors import (
    BulkWriteError,
    ConnectionFailure,
    DuplicateKeyError,
    OperationFailure,
    PyMongoError,
)

from queuert.errors import (
    AdapterError,
    InputValidationError,
    QueuertError,
    SchemaNotMigratedError,
    TransientStateError,
)

T = TypeVar("T")

DUPLICATE_KEY = 11000

# Server error codes that mean "try again": write conflicts between transactions,
# a transaction the server dropped, elections and shutdowns, time limits.
_TRANSIENT_CODES = frozenset(
    {
        6,  # HostUnreachable
        7,  # HostNotFound
        24,  # LockTimeout
        50,  # MaxTimeMSExpired
        89,  # NetworkTimeout
        91,  # ShutdownInProgress
        112,  # WriteConflict
        189,  # PrimarySteppedDown
        251,  # NoSuchTransaction
        262,  # ExceededTimeLimit
        9001,  # SocketException
        10107,  # NotWritablePrimary
        11600,  # InterruptedAtShutdown
        11602,  # InterruptedDueToReplStateChange
        13435,  # NotPrimaryNoSecondaryOk
        13436,  # NotPrimaryOrSecondary
    }
)

DRIVER_ERRORS: tuple[type[BaseException], ...] = (PyMongoError, BSONError, OverflowError)
"""Every exception type :func:`translate` knows how to turn into a queuert error."""

MIGRATE_HINT = (
    "run `await app.migrate()` (or `await MongoStateAdapter.migrate()`) to create or upgrade it"
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` may pass when the operation (or its whole transaction) is tried
    again."""
    if not isinstance(exc, PyMongoError):
        return False
    if exc.has_error_label("TransientTransactionError") or exc.has_error_label(
        "UnknownTransactionCommitResult"
    ):
        return True
    if exc.timeout or isinstance(exc, ConnectionFailure):
        return True
    return isinstance(exc, OperationFailure) and exc.code in _TRANSIENT_CODES


def is_duplicate_key(exc: BaseException) -> bool:
    if isinstance(exc, DuplicateKeyError):
        return True
    if isinstance(exc, BulkWriteError):
        errors = exc.details.get("writeErrors") or []
        return any(error.get("code") == DUPLICATE_KEY for error in errors)
    return isinstance(exc, OperationFailure) and exc.code == DUPLICATE_KEY


class KeyRace(TransientStateError):
    """A document upserted by its key in a transaction was inserted by another
    transaction since this one read: running the transaction again finds it (a
    transaction of the adapter's own is run again; in the caller's, core retries)."""


async def upsert_by_key(write: Awaitable[T]) -> T:
    """Await ``write``, an upsert by a key that concurrent transactions may insert,
    raising a duplicate key as :class:`KeyRace`."""
    try:
        return await write
    except DuplicateKeyError as exc:
        raise KeyRace(
            f"a concurrent transaction inserted the same key; retry ({str(exc)[:200]})"
        ) from exc


def translate(exc: BaseException) -> QueuertError:
    """The queuert error standing for the driver error ``exc``."""
    if isinstance(exc, QueuertError):
        return exc
    if isinstance(exc, BSONError | OverflowError):
        return InputValidationError(f"value cannot be stored in MongoDB: {str(exc)[:200]}")
    if is_transient(exc):
        return TransientStateError(f"MongoDB operation failed and may be retried: {exc!r:.300}")
    if is_duplicate_key(exc):
        return AdapterError(
            "MongoDB refused a duplicate key: a job with this id, or a job at this chain "
            f"position, exists already ({str(exc)[:200]})"
        )
    return AdapterError(f"MongoDB operation failed: {exc!r:.300}")


def schema_missing(database: str, jobs: str, reason: str) -> SchemaNotMigratedError:
    return SchemaNotMigratedError(
        f"queuert collection {jobs!r} in MongoDB database {database!r} is not migrated "
        f"({reason}): {MIGRATE_HINT}"
    )
