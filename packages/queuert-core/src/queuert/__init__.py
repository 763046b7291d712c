"""queuert: chains of background jobs stored in the database your application
already uses, started inside its own transactions.

The public API is what this module exports.
"""

from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter, MemoryTransaction
from queuert.blockers import MAX_BLOCKERS, Blocker, Blockers
from queuert.client import ChainHandle, Queuert
from queuert.context import EnqueueJob, JobContext
from queuert.control_records import (
    QueueCount,
    QueueCounts,
    QueuePosition,
    RevokedChain,
    SettledJob,
    WorkerInfo,
    WorkerRecord,
)
from queuert.definitions import ChainDef, QueueDef, chain
from queuert.errors import (
    AdapterError,
    BlockerFailedError,
    BlockerLimitExceededError,
    ChainEndedError,
    ChainFailedError,
    ChainHasDependentsError,
    ConfigurationError,
    ContinuationError,
    ForeignQueueError,
    ForeignTransactionError,
    InputValidationError,
    InvalidTransactionError,
    JobNotFoundError,
    JobStateError,
    LeaseError,
    LeaseLostError,
    NonRetryableError,
    QueuertError,
    SchemaDamagedError,
    SchemaNotMigratedError,
    SchemaTooNewError,
    TransactionClosedError,
    TransientStateError,
    UnknownChainError,
    UnknownQueueError,
    UnsupportedOperationError,
    ValidationError,
)
from queuert.explain import Explanation
from queuert.job import Continuation, Job
from queuert.limits import ConcurrencyLimit
from queuert.metrics import Metrics
from queuert.observer import Observer
from queuert.operations import QueueStats, Stats
from queuert.ports import (
    NotifyAdapter,
    NotifyCapabilities,
    ScheduledSignal,
    StateAdapter,
    StateCapabilities,
    Subscription,
)
from queuert.rates import RateLimit
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
    ScheduleSlot,
)
from queuert.retry import RetryPolicy
from queuert.schedules import ScheduleDef, ScheduleError, ScheduleInfo
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
    "ChainEndedError",
    "ChainFailedError",
    "ChainFilter",
    "ChainHandle",
    "ChainHasDependentsError",
    "ChainRecord",
    "ConcurrencyLimit",
    "ConfigurationError",
    "Continuation",
    "ContinuationError",
    "DedupKey",
    "DedupScope",
    "EnqueueJob",
    "Explanation",
    "ForeignQueueError",
    "ForeignTransactionError",
    "InProcessNotifyAdapter",
    "InputValidationError",
    "InvalidTransactionError",
    "Job",
    "JobContext",
    "JobError",
    "JobFilter",
    "JobNotFoundError",
    "JobRecord",
    "JobStateError",
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
    "Observer",
    "Page",
    "QueueCount",
    "QueueCounts",
    "QueueDef",
    "QueuePosition",
    "QueueStats",
    "Queuert",
    "QueuertError",
    "RateLimit",
    "RetryPolicy",
    "RevokedChain",
    "ScheduleDef",
    "ScheduleError",
    "ScheduleInfo",
    "ScheduleSlot",
    "ScheduledSignal",
    "SchemaDamagedError",
    "SchemaNotMigratedError",
    "SchemaTooNewError",
    "SettledJob",
    "StateAdapter",
    "StateCapabilities",
    "Stats",
    "Subscription",
    "TransactionClosedError",
    "TransientStateError",
    "UnknownChainError",
    "UnknownQueueError",
    "UnsupportedOperationError",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "WorkerRecord",
    "chain",
]
