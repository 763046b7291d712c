"""The conformance suite fails adapters that break the contract: each broken
adapter (one bug each) runs the suite in a separate pytest session, next to the
correct reference adapter, and the cases aimed at that bug must fail for it and
pass for the reference. The inner session runs in pytest-asyncio's strict mode,
as a third party's project might."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from queuert.conformance import NotifyAdapterConformance, StateAdapterConformance

pytest_plugins = ["pytester"]

SUITES = """
import pytest_asyncio

from broken_adapters import (
    DoubleHandingStateAdapter,
    DuplicatingSlotsStateAdapter,
    KeylessLimitStateAdapter,
    LeakyRollbackStateAdapter,
    LimitlessStateAdapter,
    RacyLimitStateAdapter,
    StickyLeaseLimitStateAdapter,
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
TestLimitless = state_suite(LimitlessStateAdapter)
TestDuplicatingSlots = state_suite(DuplicatingSlotsStateAdapter)
TestKeylessLimit = state_suite(KeylessLimitStateAdapter)
TestRacyLimit = state_suite(RacyLimitStateAdapter)
TestStickyLeaseLimit = state_suite(StickyLeaseLimitStateAdapter)
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


@dataclass(frozen=True)
class Bug:
    """A broken suite, the reference suite it is compared with, and the cases
    aimed at its bug (``only``: the one parameter set of each that must catch it)."""

    broken: str
    reference: str
    cases: tuple[str, ...]
    only: str = ""


BUGS = {
    "double-handed-jobs-fail-the-acquire-cases": Bug(
        "TestDoubleHanding",
        "TestReferenceState",
        (
            "test_parallel_acquires_return_distinct_jobs",
            "test_parallel_acquires_across_adapters_return_distinct_jobs",
            "test_running_job_is_not_acquired_again",
        ),
    ),
    "leaky-rollback-fails-the-transaction-cases": Bug(
        "TestLeakyRollback",
        "TestReferenceState",
        (
            "test_rollback_leaves_nothing",
            "test_rollback_restores_every_change",
            "test_rolled_back_acquire_leaves_the_job_eligible",
            "test_rolled_back_delete_restores_the_chain",
            "test_rollback_discards_savepoint_writes",
        ),
    ),
    "ignored-limit-fails-the-limit-cases": Bug(
        "TestLimitless",
        "TestReferenceState",
        (
            "test_limited_acquire_stops_at_the_queue_limit",
            "test_finished_job_frees_its_place",
            "test_parallel_limited_acquires_stay_within_the_limit",
            "test_per_key_limit_holds_each_key_without_blocking_others",
        ),
    ),
    "keyless-limit-fails-the-per-key-cases": Bug(
        "TestKeylessLimit",
        "TestReferenceState",
        (
            "test_per_key_limit_holds_each_key_without_blocking_others",
            "test_per_key_limit_of_two_counts_running_jobs_of_the_key",
        ),
    ),
    "racy-limit-fails-the-parallel-limit-case": Bug(
        "TestRacyLimit",
        "TestReferenceState",
        ("test_parallel_limited_acquires_stay_within_the_limit",),
    ),
    "sticky-expired-lease-fails-the-expiry-case": Bug(
        "TestStickyLeaseLimit",
        "TestReferenceState",
        ("test_expired_lease_frees_its_place_before_reaping",),
    ),
    "duplicated-slots-fail-the-slot-dedup-case": Bug(
        "TestDuplicatingSlots",
        "TestReferenceState",
        ("test_a_slot_starts_one_chain_however_many_start_it",),
    ),
    "unfiltered-subscription-fails-the-filter-case": Bug(
        "TestUnfilteredLeaseLost",
        "TestReferenceNotify",
        ("test_only_the_subscribed_key_is_delivered",),
        only="[lease_lost]",
    ),
    "unlimited-wake-claims-fail-the-wake-hint-cases": Bug(
        "TestUnlimitedWake",
        "TestReferenceNotify",
        ("test_exactly_count_concurrent_claims_succeed", "test_budget_runs_out"),
    ),
}


@pytest.mark.parametrize("bug", list(BUGS.values()), ids=list(BUGS))
def test_broken_adapter_fails_the_cases_aimed_at_its_bug(
    pytester: pytest.Pytester, bug: Bug
) -> None:
    outcomes = run_suites(pytester, *bug.cases)
    for case in bug.cases:
        assert outcomes.get(f"{bug.broken}::{case}{bug.only}") == "failed", outcomes
        assert outcomes.get(f"{bug.reference}::{case}{bug.only}") == "passed", outcomes


@pytest.mark.parametrize("suite", [StateAdapterConformance, NotifyAdapterConformance])
def test_no_area_hides_a_case_of_another(suite: type) -> None:
    # Areas are mixins: a case name used twice would silently drop one of them.
    seen: dict[str, str] = {}
    for area in suite.__mro__[1:]:
        for name in vars(area):
            if name.startswith("test_"):
                assert name not in seen, f"{name} is in both {seen[name]} and {area.__name__}"
                seen[name] = area.__name__
