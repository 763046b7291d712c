"""queuert: chains of background jobs stored in the database your application
already uses, started inside its own transactions.

The public API is what this module exports.
"""

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.blockers import MAX_BLOCKERS, Blocker, Blockers
from queuert.client import ChainHandle, Queuert
from queuert.context import EnqueueJob, JobContext
from queuert.definitions import ChainDef, QueueDef, chain
from queuert.errors import (
    AdapterError,
    BlockerFailedError,
    BlockerLimitExceededError,
    ChainFailedError,
    ChainHasDependentsError,
    ConfigurationError,
    ContinuationError,
    ForeignQueueError,
    InputValidationError,
    JobNotFoundError,
    LeaseError,
    LeaseLostError,
    NonRetryableError,
    QueuertError,
    SchemaNotMigratedError,
    TransientStateError,
    UnknownChainError,
    UnknownQueueError,
    ValidationError,
)
from queuert.job import Continuation, Job
from queuert.metrics import Metrics
from queuert.ports import (
    NotifyAdapter,
    NotifyCapabilities,
    ScheduledSignal,
    StateAdapter,
    StateCapabilities,
    Subscription,
)
from queuert.records import (
    BlockerRecord,
    ChainFilter,
    ChainRecord,
    DedupKey,
    DedupScope,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
)
from queuert.retry import RetryPolicy
from queuert.worker import Worker

__all__ = [
    "MAX_BLOCKERS",
    "AdapterError",
    "Blocker",
    "BlockerFailedError",
    "BlockerLimitExceededError",
    "BlockerRecord",
    "Blockers",
    "ChainDef",
    "ChainFailedError",
    "ChainFilter",
    "ChainHandle",
    "ChainHasDependentsError",
    "ChainRecord",
    "ConfigurationError",
    "Continuation",
    "ContinuationError",
    "DedupKey",
    "DedupScope",
    "EnqueueJob",
    "ForeignQueueError",
    "InProcessNotifyAdapter",
    "InputValidationError",
    "Job",
    "JobContext",
    "JobError",
    "JobFilter",
    "JobNotFoundError",
    "JobRecord",
    "JobStatus",
    "Lease",
    "LeaseError",
    "LeaseLostError",
    "MemoryStateAdapter",
    "MemoryTransaction",
    "Metrics",
    "NewJob",
    "NonRetryableError",
    "NotifyAdapter",
    "NotifyCapabilities",
    "Page",
    "QueueDef",
    "Queuert",
    "QueuertError",
    "RetryPolicy",
    "ScheduledSignal",
    "SchemaNotMigratedError",
    "StateAdapter",
    "StateCapabilities",
    "Subscription",
    "TransientStateError",
    "UnknownChainError",
    "UnknownQueueError",
    "ValidationError",
    "Worker",
    "chain",
]
