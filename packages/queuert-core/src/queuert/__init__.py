"""queuert: chains of background jobs stored in the database your application
already uses, started inside its own transactions.

The public API is what this module exports.
"""

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.client import ChainHandle, Queuert
from queuert.context import EnqueueJob, JobContext
from queuert.definitions import ChainDef, QueueDef, chain
from queuert.errors import (
    AdapterError,
    ChainFailedError,
    ConfigurationError,
    ContinuationError,
    ForeignQueueError,
    InputValidationError,
    JobNotFoundError,
    LeaseError,
    LeaseLostError,
    NonRetryableError,
    QueuertError,
    SchemaDamagedError,
    SchemaNotMigratedError,
    SchemaTooNewError,
    TransientStateError,
    UnknownChainError,
    UnknownQueueError,
    ValidationError,
)
from queuert.job import Continuation, Job
from queuert.limits import ConcurrencyLimit
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
    ChainFilter,
    ChainRecord,
    JobError,
    JobFilter,
    JobRecord,
    JobStatus,
    Lease,
    NewJob,
    Page,
    ScheduleSlot,
)
from queuert.retry import RetryPolicy
from queuert.schedules import ScheduleDef, ScheduleError, ScheduleInfo
from queuert.worker import Worker

__all__ = [
    "AdapterError",
    "ChainDef",
    "ChainFailedError",
    "ChainFilter",
    "ChainHandle",
    "ChainRecord",
    "ConcurrencyLimit",
    "ConfigurationError",
    "Continuation",
    "ContinuationError",
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
    "ScheduleDef",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleSlot",
    "ScheduledSignal",
    "SchemaDamagedError",
    "SchemaNotMigratedError",
    "SchemaTooNewError",
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
