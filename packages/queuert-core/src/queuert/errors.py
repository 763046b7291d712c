"""Errors raised by queuert.

Every error raised by a public entry point derives from :class:`QueuertError`.
Validation errors are raised before anything is written.
"""

from __future__ import annotations


class QueuertError(Exception):
    """Base class of every error raised by queuert."""


class ValidationError(QueuertError, ValueError):
    """A public entry point was given a value it cannot accept. Nothing was written."""


class UnknownChainError(ValidationError):
    """The chain is not registered with this :class:`~queuert.Queuert` instance."""


class UnknownQueueError(ValidationError):
    """The queue is not part of any registered chain."""


class InputValidationError(ValidationError):
    """An input or output does not match its declared type or is not JSON-serialisable."""


class ForeignQueueError(ValidationError):
    """A continuation targets a queue that belongs to another chain."""


class ContinuationError(ValidationError):
    """``enqueue_job`` was called more than once in one finalize, or misused."""


class LeaseError(ValidationError):
    """A lease duration or heartbeat interval is zero, negative or not an integer."""


class ConfigurationError(ValidationError):
    """A URL, scheme or option cannot be resolved into an adapter."""


class SchemaNotMigratedError(QueuertError):
    """The database schema is missing or older than this version of the adapter."""


class LeaseLostError(QueuertError):
    """The job's lease is no longer held by this worker.

    Raised inside a handler when a heartbeat or finalize finds that the lease
    expired and the job was reaped or taken by another worker. Nothing the
    stale attempt tries to commit afterwards is written.
    """

    def __init__(self, job_id: str, message: str | None = None) -> None:
        super().__init__(message or f"lease lost for job {job_id!r}")
        self.job_id = job_id


class JobNotFoundError(QueuertError, LookupError):
    """No job or chain has the given id."""


class ChainFailedError(QueuertError):
    """An awaited chain ended in ``failed`` or ``cancelled`` instead of ``completed``."""

    def __init__(self, chain_id: str, status: str, error: object | None) -> None:
        super().__init__(f"chain {chain_id!r} ended {status}: {error}")
        self.chain_id = chain_id
        self.status = status
        self.error = error


class NonRetryableError(QueuertError):
    """Raise (or subclass) in a handler to fail the job and its chain at once."""


class TransientStateError(QueuertError):
    """A state adapter operation failed for a reason that may pass (lost connection,
    serialisation failure, database busy). Core retries these a few times."""


class AdapterError(QueuertError):
    """A state or notify adapter failed in a way that retrying will not fix."""


class SchemaTooNewError(SchemaNotMigratedError):
    """The schema is recorded at a newer version than this adapter knows: upgrade the
    adapter (``migrate()`` cannot help)."""


class SchemaDamagedError(SchemaNotMigratedError):
    """The schema records its migrations but tables they created are missing
    (dropped or renamed by hand); ``migrate()`` will not recreate them."""


class ForeignTransactionError(ValidationError):
    """The caller's ``tx`` cannot be used by this state adapter: an object of another
    driver (an SQLAlchemy session on another dialect), or a connection to another
    database than the adapter's. Nothing was written."""


class JobStateError(ValidationError):
    """The job or chain is not in a state that allows the operation (retrying a
    running chain, completing a job that already ended). Nothing was written."""


class ChainEndedError(JobStateError):
    """The chain or job already ended (completed, failed or cancelled): it cannot be
    cancelled or completed again."""


class UnsupportedOperationError(AdapterError):
    """The state adapter does not implement this operation."""


class InvalidTransactionError(ValidationError):
    """The object passed as ``tx`` is not a transaction of the state adapter's driver.
    Nothing was written."""


class TransactionClosedError(InvalidTransactionError):
    """The transaction passed as ``tx`` (or handed to a finalize callback) is no longer
    open: it was committed or rolled back, or its connection is closed. Nothing was
    written through it."""


class BlockerFailedError(QueuertError):
    """A chain a job waited on ended ``failed`` or ``cancelled``, so the job failed.

    The state adapter records it as the blocked job's error (its type is this
    class's qualified name); it is raised when such a blocker's output is read."""

    def __init__(self, chain_id: str, status: str) -> None:
        super().__init__(f"blocker chain {chain_id!r} ended {status}")
        self.chain_id = chain_id
        self.status = status


class BlockerLimitExceededError(ValidationError):
    """More blockers were given for one job than :data:`queuert.blockers.MAX_BLOCKERS`."""


class ChainHasDependentsError(QueuertError):
    """A chain to delete has jobs of other chains blocked on it; delete with
    ``cascade=True`` to delete those chains too."""

    def __init__(self, chain_ids: list[str], dependents: list[str]) -> None:
        shown = ", ".join(repr(c) for c in dependents[:5])
        more = f" and {len(dependents) - 5} more" if len(dependents) > 5 else ""
        super().__init__(
            f"cannot delete {len(chain_ids)} chain(s): chains {shown}{more} are blocked on "
            "them; pass cascade=True to delete those too"
        )
        self.chain_ids = chain_ids
        self.dependents = dependents
