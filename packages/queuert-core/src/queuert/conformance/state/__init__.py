"""The state adapter cases, one module per area, composed into
:class:`StateAdapterConformance`."""

from queuert.conformance.state.acquire import AcquireJobsCases
from queuert.conformance.state.chains import ChainCases
from queuert.conformance.state.create import CreateJobsCases
from queuert.conformance.state.delete import DeleteCases
from queuert.conformance.state.finalize import FinalizeCases
from queuert.conformance.state.fixtures import PoisonTransaction, StateAdapterFixtures
from queuert.conformance.state.lease import LeaseCases
from queuert.conformance.state.limits import LimitCases
from queuert.conformance.state.next_job import NextJobCases
from queuert.conformance.state.read import ReadCases
from queuert.conformance.state.reap import ReapCases
from queuert.conformance.state.reschedule import RescheduleCases
from queuert.conformance.state.schedules import ScheduleCases
from queuert.conformance.state.schema import SchemaCases
from queuert.conformance.state.transactions import TransactionCases


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
    LimitCases,
    ScheduleCases,
):
    """Every state adapter case. Subclass it as ``Test...`` and override the
    ``state_adapter`` fixture (and optionally ``second_state_adapter`` and
    ``poison_transaction``). Cases an adapter's capabilities rule out are skipped
    with the capability named."""


__all__ = [
    "AcquireJobsCases",
    "ChainCases",
    "CreateJobsCases",
    "DeleteCases",
    "FinalizeCases",
    "LeaseCases",
    "LimitCases",
    "NextJobCases",
    "PoisonTransaction",
    "ReadCases",
    "ReapCases",
    "RescheduleCases",
    "ScheduleCases",
    "SchemaCases",
    "StateAdapterConformance",
    "StateAdapterFixtures",
    "TransactionCases",
]
