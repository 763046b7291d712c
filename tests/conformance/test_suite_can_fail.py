"""The conformance suite fails adapters that break the contract: each broken
adapter (one bug each) runs the suite in a separate pytest session, next to the
correct reference adapter, and the cases aimed at that bug must fail for it and
pass for the reference. The inner session runs in pytest-asyncio's strict mode,
as a third party's project might."""

from __future__ import annotations

from pathlib import Path

import pytest

from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance

pytest_plugins = ["pytester"]

SUITES = """
import pytest_asyncio

from broken_adapters import (
    DoubleHandingStateAdapter,
    LeakyRollbackStateAdapter,
    UnfilteredLeaseLostNotifyAdapter,
    UnlimitedWakeNotifyAdapter,
)
from queuert.adapters.memory_notify import InProcessNotifyAdapter
from queuert.adapters.memory_state import MemoryStateAdapter
from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance


def state_suite(adapter_class):
    class Suite(StateAdapterConformance):
        @pytest_asyncio.fixture
        async def state_adapter(self):
            adapter = adapter_class()
            await adapter.migrate()
            yield adapter

    return Suite


def notify_suite(adapter_class):
    class Suite(NotifyAdapterConformance):
        @pytest_asyncio.fixture
        async def notify_adapter(self):
            adapter = adapter_class()
            yield adapter
            await adapter.close()

    return Suite


TestReferenceState = state_suite(MemoryStateAdapter)
TestDoubleHanding = state_suite(DoubleHandingStateAdapter)
TestLeakyRollback = state_suite(LeakyRollbackStateAdapter)
TestReferenceNotify = notify_suite(InProcessNotifyAdapter)
TestUnfilteredLeaseLost = notify_suite(UnfilteredLeaseLostNotifyAdapter)
TestUnlimitedWake = notify_suite(UnlimitedWakeNotifyAdapter)
"""


def run_suites(pytester: pytest.Pytester, *cases: str) -> dict[str, str]:
    """Run the named cases on every suite; map ``Class::case`` to its outcome."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    broken = Path(__file__).with_name("broken_adapters.py").read_text(encoding="utf-8")
    pytester.makepyfile(broken_adapters=broken, test_suites=SUITES)
    recorder = pytester.inline_run("-p", "no:cacheprovider", "-k", " or ".join(cases))
    outcomes: dict[str, str] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        name = report.nodeid.split("::", 1)[1]
        if report.failed or name not in outcomes or report.when == "call":
            outcomes[name] = "failed" if report.failed else report.outcome
    return outcomes


def assert_caught(outcomes: dict[str, str], *, broken: str, reference: str, case: str) -> None:
    assert outcomes.get(f"{broken}::{case}") == "failed", outcomes
    assert outcomes.get(f"{reference}::{case}") == "passed", outcomes


def test_double_handed_jobs_fail_the_acquire_cases(pytester: pytest.Pytester) -> None:
    cases = (
        "test_parallel_acquires_return_distinct_jobs",
        "test_parallel_acquires_across_adapters_return_distinct_jobs",
        "test_running_job_is_not_acquired_again",
    )
    outcomes = run_suites(pytester, *cases)
    for case in cases:
        assert_caught(
            outcomes, broken="TestDoubleHanding", reference="TestReferenceState", case=case
        )


def test_leaky_rollback_fails_the_transaction_cases(pytester: pytest.Pytester) -> None:
    cases = (
        "test_rollback_leaves_nothing",
        "test_rollback_restores_every_change",
        "test_rolled_back_acquire_leaves_the_job_eligible",
        "test_rolled_back_delete_restores_the_chain",
        "test_rollback_discards_savepoint_writes",
    )
    outcomes = run_suites(pytester, *cases)
    for case in cases:
        assert_caught(
            outcomes, broken="TestLeakyRollback", reference="TestReferenceState", case=case
        )


def test_unfiltered_subscription_fails_the_filter_case(pytester: pytest.Pytester) -> None:
    case = "test_lease_lost_only_for_the_subscribed_job"
    outcomes = run_suites(pytester, case)
    assert_caught(
        outcomes, broken="TestUnfilteredLeaseLost", reference="TestReferenceNotify", case=case
    )


def test_unlimited_wake_claims_fail_the_wake_hint_cases(pytester: pytest.Pytester) -> None:
    cases = ("test_exactly_count_concurrent_claims_succeed", "test_budget_runs_out")
    outcomes = run_suites(pytester, *cases)
    for case in cases:
        assert_caught(
            outcomes, broken="TestUnlimitedWake", reference="TestReferenceNotify", case=case
        )


@pytest.mark.parametrize("suite", [StateAdapterConformance, NotifyAdapterConformance])
def test_no_area_hides_a_case_of_another(suite: type) -> None:
    # Areas are mixins: a case name used twice would silently drop one of them.
    seen: dict[str, str] = {}
    for area in suite.__mro__[1:]:
        for name in vars(area):
            if name.startswith("test_"):
                assert name not in seen, f"{name} is in both {seen[name]} and {area.__name__}"
                seen[name] = area.__name__
