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
    ContinuationUnblocksStateAdapter,
    DedupFilterIgnoringStateAdapter,
    KeyIgnoringStateAdapter,
    KeyNeverReleasedStateAdapter,
    ReadThenWriteDedupStateAdapter,
    UnscopedKeyStateAdapter,
    DoubleHandingStateAdapter,
    FailureAlwaysFailsStateAdapter,
    FailureIgnoringStateAdapter,
    FewBlockersStateAdapter,
    FirstBlockerUnblocksStateAdapter,
    LeakyRollbackStateAdapter,
    NeverUnblockingStateAdapter,
    ReadThenWriteUnblockStateAdapter,
    SelfDependentStateAdapter,
    SortedBlockersStateAdapter,
    WritesBeforeCheckingStateAdapter,
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
TestNeverUnblocking = state_suite(NeverUnblockingStateAdapter)
TestFirstBlockerUnblocks = state_suite(FirstBlockerUnblocksStateAdapter)
TestContinuationUnblocks = state_suite(ContinuationUnblocksStateAdapter)
TestFailureIgnoring = state_suite(FailureIgnoringStateAdapter)
TestFailureAlwaysFails = state_suite(FailureAlwaysFailsStateAdapter)
TestReadThenWriteUnblock = state_suite(ReadThenWriteUnblockStateAdapter)
TestWritesBeforeChecking = state_suite(WritesBeforeCheckingStateAdapter)
TestFewBlockers = state_suite(FewBlockersStateAdapter)
TestSortedBlockers = state_suite(SortedBlockersStateAdapter)
TestSelfDependent = state_suite(SelfDependentStateAdapter)
TestKeyIgnoring = state_suite(KeyIgnoringStateAdapter)
TestKeyNeverReleased = state_suite(KeyNeverReleasedStateAdapter)
TestUnscopedKey = state_suite(UnscopedKeyStateAdapter)
TestReadThenWriteDedup = state_suite(ReadThenWriteDedupStateAdapter)
TestDedupFilterIgnoring = state_suite(DedupFilterIgnoringStateAdapter)
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
            "test_a_rolled_back_start_releases_the_key",
        ),
    ),
    "never-unblocking-fails-the-unblock-cases": Bug(
        "TestNeverUnblocking",
        "TestReferenceState",
        (
            "test_blocked_job_waits_until_its_blocker_completes",
            "test_blocked_job_waits_for_every_blocker",
            "test_a_rolled_back_completion_keeps_the_job_blocked",
            "test_continue_blocked_job_waits_then_runs",
        ),
    ),
    "first-blocker-unblocking-fails-the-every-blocker-case": Bug(
        "TestFirstBlockerUnblocks",
        "TestReferenceState",
        ("test_blocked_job_waits_for_every_blocker",),
    ),
    "continuation-unblocking-fails-the-continued-blocker-case": Bug(
        "TestContinuationUnblocks",
        "TestReferenceState",
        ("test_a_continued_blocker_chain_has_not_completed",),
    ),
    "ignored-blocker-failures-fail-the-failure-cases": Bug(
        "TestFailureIgnoring",
        "TestReferenceState",
        (
            "test_failure_reaches_jobs_blocked_on_a_failed_dependent",
            "test_an_already_failed_blocker_fails_the_new_job",
        ),
    ),
    "ignored-blocker-failure-fails-the-failed-blocker-case": Bug(
        "TestFailureIgnoring",
        "TestReferenceState",
        ("test_a_blocker_that_does_not_complete_fails_the_job",),
        only="[fail]",
    ),
    "ignored-blocker-cancellation-fails-the-cancelled-blocker-case": Bug(
        "TestFailureIgnoring",
        "TestReferenceState",
        ("test_a_blocker_that_does_not_complete_fails_the_job",),
        only="[cancel]",
    ),
    "failing-however-fails-the-run-however-case": Bug(
        "TestFailureAlwaysFails",
        "TestReferenceState",
        ("test_a_job_that_runs_however_waits_for_every_blocker_to_end",),
    ),
    "read-then-write-unblocking-fails-the-concurrent-case": Bug(
        "TestReadThenWriteUnblock",
        "TestReferenceState",
        ("test_concurrent_completions_of_the_last_blockers_unblock_once",),
    ),
    "writing-before-checking-fails-the-missing-blocker-case": Bug(
        "TestWritesBeforeChecking",
        "TestReferenceState",
        ("test_a_missing_blocker_raises_and_writes_nothing",),
    ),
    "few-blockers-fail-the-hundred-blockers-case": Bug(
        "TestFewBlockers", "TestReferenceState", ("test_a_hundred_blockers_are_accepted",)
    ),
    "sorted-blockers-fail-the-order-case": Bug(
        "TestSortedBlockers",
        "TestReferenceState",
        ("test_blockers_are_read_in_order_with_their_outputs",),
    ),
    "self-dependent-chains-fail-the-dependents-case": Bug(
        "TestSelfDependent", "TestReferenceState", ("test_dependent_chains_are_listed",)
    ),
    "ignored-keys-fail-the-dedup-cases": Bug(
        "TestKeyIgnoring",
        "TestReferenceState",
        (
            "test_a_held_key_starts_no_second_chain",
            "test_any_scope_keeps_the_key_after_the_chain_ends",
            "test_a_batch_with_repeated_keys_starts_one_chain_per_key",
            "test_concurrent_starts_of_one_key_start_one_chain",
        ),
    ),
    "keys-never-released-fail-the-release-cases": Bug(
        "TestKeyNeverReleased",
        "TestReferenceState",
        (
            "test_a_deleted_chain_releases_the_key",
            "test_any_scope_with_a_window_releases_the_key_once_it_passed",
        ),
    ),
    "keys-never-released-fail-the-ended-chain-case": Bug(
        "TestKeyNeverReleased",
        "TestReferenceState",
        ("test_an_ended_chain_releases_an_incomplete_scoped_key",),
        only="[complete]",
    ),
    "unscoped-keys-fail-the-chain-name-case": Bug(
        "TestUnscopedKey", "TestReferenceState", ("test_keys_are_scoped_by_chain_name",)
    ),
    "read-then-write-dedup-fails-the-concurrent-case": Bug(
        "TestReadThenWriteDedup",
        "TestReferenceState",
        ("test_concurrent_starts_of_one_key_start_one_chain",),
    ),
    "ignored-dedup-filter-fails-the-filter-case": Bug(
        "TestDedupFilterIgnoring",
        "TestReferenceState",
        ("test_chains_are_filtered_by_dedup_key",),
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
