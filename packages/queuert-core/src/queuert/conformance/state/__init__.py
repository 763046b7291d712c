"""The state adapter cases, one module per area, composed into
:class:`StateAdapterConformance`."""

from queuert.conformance.state.acquire import AcquireJobsCases
from queuert.conformance.state.blockers import BlockerCases
from queuert.conformance.state.caller_tx import CallerTransactionCases
from queuert.conformance.state.chains import ChainCases
from queuert.conformance.state.create import CreateJobsCases
from queuert.conformance.state.dedup import DedupCases
from queuert.conformance.state.delete import DeleteCases
from queuert.conformance.state.fan_in import FanInCases
from queuert.conformance.state.finalize import FinalizeCases
from queuert.conformance.state.fixtures import PoisonTransaction, StateAdapterFixtures
from queuert.conformance.state.hand_off import HandOffCases
from queuert.conformance.state.lease import LeaseCases
from queuert.conformance.state.limit_keys import LimitKeyCases
from queuert.conformance.state.limits import LimitCases
from queuert.conformance.state.next_job import NextJobCases
from queuert.conformance.state.operations_control import ControlCases
from queuert.conformance.state.operations_observe import ObserveCases
from queuert.conformance.state.rates import RateCases
from queuert.conformance.state.read import ReadCases
from queuert.conformance.state.reap import ReapCases
from queuert.conformance.state.reschedule import RescheduleCases
from queuert.conformance.state.schedules import ScheduleCases
from queuert.conformance.state.schema import SchemaCases
from queuert.conformance.state.trace_context import TraceContextCases
from queuert.conformance.state.transactions import TransactionCases
from queuert.conformance.state.tx_checks import TransactionCheckCases


class StateAdapterConformance(
    StateAdapterFixtures,
    SchemaCases,
    CreateJobsCases,
    AcquireJobsCases,
    LeaseCases,
    FinalizeCases,
    RescheduleCases,
    ReapCases,
    ChainCases,
    NextJobCases,
    ReadCases,
    DeleteCases,
    TransactionCases,
    CallerTransactionCases,
    ControlCases,
    ObserveCases,
    TransactionCheckCases,
    BlockerCases,
    DedupCases,
    FanInCases,
    TraceContextCases,
    LimitCases,
    LimitKeyCases,
    HandOffCases,
    RateCases,
    ScheduleCases,
):
    """Every state adapter case. Subclass it as ``Test...`` and override the
    ``state_adapter`` fixture (and optionally ``second_state_adapter`` and
    ``poison_transaction``). Cases an adapter's capabilities rule out are skipped
    with the capability named."""


__all__ = [
    "AcquireJobsCases",
    "BlockerCases",
    "CallerTransactionCases",
    "ChainCases",
    "ControlCases",
    "CreateJobsCases",
    "DedupCases",
    "DeleteCases",
    "FanInCases",
    "FinalizeCases",
    "HandOffCases",
    "LeaseCases",
    "LimitCases",
    "LimitKeyCases",
    "NextJobCases",
    "ObserveCases",
    "PoisonTransaction",
    "RateCases",
    "ReadCases",
    "ReapCases",
    "RescheduleCases",
    "ScheduleCases",
    "SchemaCases",
    "StateAdapterConformance",
    "StateAdapterFixtures",
    "TraceContextCases",
    "TransactionCases",
    "TransactionCheckCases",
]
