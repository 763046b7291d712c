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
    DetachedCallerStateAdapter,
    ContinuationUnblocksStateAdapter,
    DedupFilterIgnoringStateAdapter,
    KeyIgnoringStateAdapter,
    KeyNeverReleasedStateAdapter,
    ReadThenWriteDedupStateAdapter,
    UnscopedKeyStateAdapter,
    ContextDroppingStateAdapter,
    DoubleHandingStateAdapter,
    FailureAlwaysFailsStateAdapter,
    FailureIgnoringStateAdapter,
    FewBlockersStateAdapter,
    FirstBlockerUnblocksStateAdapter,
    LeakyRollbackStateAdapter,
    OnlyPendingRevokeStateAdapter,
    UnwrittenRevokeStateAdapter,
    BudgetKeepingResumeStateAdapter,
    UncheckedResumeStateAdapter,
    UncheckedSettleStateAdapter,
    ValueDroppingSettleStateAdapter,
    LeaseHidingSettleStateAdapter,
    TimelessPurgeStateAdapter,
    UnlimitedPurgeStateAdapter,
    UnorderedWorkersStateAdapter,
    UnforgettingWorkersStateAdapter,
    OldestlessCountsStateAdapter,
    FrontOfQueueStateAdapter,
    OldestFirstListingStateAdapter,
    QueuelessChainListingStateAdapter,
    WindowlessListingStateAdapter,
    AcceptsAnyTxStateAdapter,
    NeverClosedStateAdapter,
    NeverUnblockingStateAdapter,
    ReadThenWriteUnblockStateAdapter,
    SelfDependentStateAdapter,
    SortedBlockersStateAdapter,
    WritesBeforeCheckingStateAdapter,
    DuplicatingSlotsStateAdapter,
    IdOrderKeyLimitStateAdapter,
    KeylessLeftBehindStateAdapter,
    KeylessLimitStateAdapter,
    LeakyRollbackStateAdapter,
    LimitlessStateAdapter,
    RacyLimitStateAdapter,
    StickyLeaseLimitStateAdapter,
    UnfilteredLeaseLostNotifyAdapter,
    UnlimitedWakeNotifyAdapter,
    UnrecordedLimitStateAdapter,
)
from broken_fan_in_adapters import (
    BlockerDroppingDedupStateAdapter,
    KeyDroppingNewestListingStateAdapter,
    SettleUnblocksStateAdapter,
    SilentUnblockStateAdapter,
    UnflaggedBlockersStateAdapter,
)
from broken_hand_off_adapters import (
    CountlessHandOffStateAdapter,
    CreationOnlyKeyIndexStateAdapter,
    KeyBlindHandOffStateAdapter,
    LostLeaseHandOffStateAdapter,
    MarginlessHandOffStateAdapter,
    MicrosecondLeaseHandOffStateAdapter,
    RacyHandOffStateAdapter,
)
from broken_rate_adapters import (
    EndlessWindowStateAdapter,
    FixedWindowRateStateAdapter,
    KeyDroppingContinuationStateAdapter,
    KeylessRateStateAdapter,
    RacyRateStateAdapter,
    RatelessStateAdapter,
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
TestDetachedCaller = state_suite(DetachedCallerStateAdapter)
TestOnlyPendingRevoke = state_suite(OnlyPendingRevokeStateAdapter)
TestUnwrittenRevoke = state_suite(UnwrittenRevokeStateAdapter)
TestBudgetKeepingResume = state_suite(BudgetKeepingResumeStateAdapter)
TestUncheckedResume = state_suite(UncheckedResumeStateAdapter)
TestUncheckedSettle = state_suite(UncheckedSettleStateAdapter)
TestValueDroppingSettle = state_suite(ValueDroppingSettleStateAdapter)
TestLeaseHidingSettle = state_suite(LeaseHidingSettleStateAdapter)
TestTimelessPurge = state_suite(TimelessPurgeStateAdapter)
TestUnlimitedPurge = state_suite(UnlimitedPurgeStateAdapter)
TestUnorderedWorkers = state_suite(UnorderedWorkersStateAdapter)
TestUnforgettingWorkers = state_suite(UnforgettingWorkersStateAdapter)
TestOldestlessCounts = state_suite(OldestlessCountsStateAdapter)
TestFrontOfQueue = state_suite(FrontOfQueueStateAdapter)
TestOldestFirstListing = state_suite(OldestFirstListingStateAdapter)
TestWindowlessListing = state_suite(WindowlessListingStateAdapter)
TestQueuelessChainListing = state_suite(QueuelessChainListingStateAdapter)
TestNeverClosed = state_suite(NeverClosedStateAdapter)
TestAcceptsAnyTx = state_suite(AcceptsAnyTxStateAdapter)
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
TestContextDropping = state_suite(ContextDroppingStateAdapter)
TestLimitless = state_suite(LimitlessStateAdapter)
TestDuplicatingSlots = state_suite(DuplicatingSlotsStateAdapter)
TestKeylessLimit = state_suite(KeylessLimitStateAdapter)
TestRacyLimit = state_suite(RacyLimitStateAdapter)
TestStickyLeaseLimit = state_suite(StickyLeaseLimitStateAdapter)
TestUnflaggedBlockers = state_suite(UnflaggedBlockersStateAdapter)
TestSilentUnblock = state_suite(SilentUnblockStateAdapter)
TestSettleUnblocks = state_suite(SettleUnblocksStateAdapter)
TestBlockerDroppingDedup = state_suite(BlockerDroppingDedupStateAdapter)
TestKeyDroppingNewestListing = state_suite(KeyDroppingNewestListingStateAdapter)
TestRateless = state_suite(RatelessStateAdapter)
TestKeylessRate = state_suite(KeylessRateStateAdapter)
TestRacyRate = state_suite(RacyRateStateAdapter)
TestEndlessWindow = state_suite(EndlessWindowStateAdapter)
TestFixedWindowRate = state_suite(FixedWindowRateStateAdapter)
TestKeyDroppingContinuation = state_suite(KeyDroppingContinuationStateAdapter)
TestKeylessLeftBehind = state_suite(KeylessLeftBehindStateAdapter)
TestIdOrderKeyLimit = state_suite(IdOrderKeyLimitStateAdapter)
TestUnrecordedLimit = state_suite(UnrecordedLimitStateAdapter)
TestCountlessHandOff = state_suite(CountlessHandOffStateAdapter)
TestKeyBlindHandOff = state_suite(KeyBlindHandOffStateAdapter)
TestMarginlessHandOff = state_suite(MarginlessHandOffStateAdapter)
TestLostLeaseHandOff = state_suite(LostLeaseHandOffStateAdapter)
TestRacyHandOff = state_suite(RacyHandOffStateAdapter)
TestMicrosecondLeaseHandOff = state_suite(MicrosecondLeaseHandOffStateAdapter)
TestCreationOnlyKeyIndex = state_suite(CreationOnlyKeyIndexStateAdapter)
TestReferenceNotify = notify_suite(InProcessNotifyAdapter)
TestUnfilteredLeaseLost = notify_suite(UnfilteredLeaseLostNotifyAdapter)
TestUnlimitedWake = notify_suite(UnlimitedWakeNotifyAdapter)
"""


def run_suites(pytester: pytest.Pytester, *cases: str) -> dict[str, str]:
    """Run the named cases on every suite; map ``Class::case`` to its outcome."""
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\nasyncio_default_fixture_loop_scope = function\n"
    )
    here = Path(__file__)
    broken = here.with_name("broken_adapters.py").read_text(encoding="utf-8")
    fan_in = here.with_name("broken_fan_in_adapters.py").read_text(encoding="utf-8")
    rates = here.with_name("broken_rate_adapters.py").read_text(encoding="utf-8")
    hand_off = here.with_name("broken_hand_off_adapters.py").read_text(encoding="utf-8")
    pytester.makepyfile(
        broken_adapters=broken,
        broken_fan_in_adapters=fan_in,
        broken_rate_adapters=rates,
        broken_hand_off_adapters=hand_off,
        test_suites=SUITES,
    )
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
            "test_rolled_back_revoke_keeps_the_lease",
            "test_rolled_back_settle_leaves_the_job_open",
            "test_a_rolled_back_start_releases_the_key",
        ),
    ),
    "detached-caller-transaction-fails-the-caller-transaction-case": Bug(
        "TestDetachedCaller",
        "TestReferenceState",
        ("test_caller_transaction_writes_roll_back_with_the_callers",),
    ),
    "revoke-of-pending-only-fails-the-revoke-cases": Bug(
        "TestOnlyPendingRevoke",
        "TestReferenceState",
        (
            "test_revoke_running_chain_takes_the_lease",
            "test_revoke_ended_chain_raises_and_changes_nothing",
            "test_revoke_unknown_chain_raises",
        ),
    ),
    "unwritten-revoke-fails-the-revoke-cases": Bug(
        "TestUnwrittenRevoke",
        "TestReferenceState",
        (
            "test_revoke_running_chain_takes_the_lease",
            "test_revoke_pending_chain_has_no_lease",
        ),
    ),
    "kept-attempts-fail-the-resume-case": Bug(
        "TestBudgetKeepingResume",
        "TestReferenceState",
        ("test_resume_failed_job_gives_a_fresh_budget",),
    ),
    "unchecked-resume-fails-the-resume-state-cases": Bug(
        "TestUncheckedResume",
        "TestReferenceState",
        (
            "test_resume_continues_at_the_job_the_chain_ended_on",
            "test_resume_refuses_jobs_that_have_not_failed",
        ),
    ),
    "unchecked-settle-fails-the-exactly-once-case": Bug(
        "TestUncheckedSettle",
        "TestReferenceState",
        ("test_settle_twice_raises",),
    ),
    "value-dropping-settle-fails-the-settle-cases": Bug(
        "TestValueDroppingSettle",
        "TestReferenceState",
        (
            "test_settle_pending_job_with_output",
            "test_settle_with_continuation_creates_the_next_job",
        ),
    ),
    "hidden-lease-fails-the-running-settle-case": Bug(
        "TestLeaseHidingSettle",
        "TestReferenceState",
        ("test_settle_running_job_revokes_its_lease",),
    ),
    "timeless-purge-fails-the-purge-case": Bug(
        "TestTimelessPurge",
        "TestReferenceState",
        ("test_purge_deletes_only_chains_ended_before_with_the_statuses",),
    ),
    "unlimited-purge-fails-the-batch-case": Bug(
        "TestUnlimitedPurge",
        "TestReferenceState",
        ("test_purge_deletes_whole_chains_in_batches",),
    ),
    "unordered-workers-fail-the-worker-record-case": Bug(
        "TestUnorderedWorkers",
        "TestReferenceState",
        ("test_workers_are_recorded_refreshed_and_removed",),
    ),
    "unforgetting-workers-fail-the-forget-case": Bug(
        "TestUnforgettingWorkers",
        "TestReferenceState",
        ("test_workers_not_seen_for_a_while_are_forgotten",),
    ),
    "counts-without-oldest-fail-the-count-case": Bug(
        "TestOldestlessCounts",
        "TestReferenceState",
        ("test_counts_by_queue_and_status",),
    ),
    "front-of-queue-fails-the-position-case": Bug(
        "TestFrontOfQueue",
        "TestReferenceState",
        ("test_queue_position_counts_due_jobs_taken_first",),
    ),
    "oldest-first-listing-fails-the-newest-case": Bug(
        "TestOldestFirstListing",
        "TestReferenceState",
        ("test_list_newest_first_pages_backwards",),
    ),
    "windowless-listing-fails-the-window-case": Bug(
        "TestWindowlessListing",
        "TestReferenceState",
        ("test_list_within_a_creation_window",),
    ),
    "queueless-chain-listing-fails-the-queue-case": Bug(
        "TestQueuelessChainListing",
        "TestReferenceState",
        ("test_chains_are_filtered_by_their_current_queue",),
    ),
    "open-forever-transactions-fail-the-caller-transaction-case": Bug(
        "TestNeverClosed",
        "TestReferenceState",
        ("test_is_transaction_open_is_true_only_inside_the_transaction",),
    ),
    "accepting-any-tx-fails-the-check-transaction-cases": Bug(
        "TestAcceptsAnyTx",
        "TestReferenceState",
        (
            "test_check_transaction_refuses_a_transaction_that_ended",
            "test_check_transaction_refuses_an_object_of_another_type",
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
    "dropped-trace-context-fails-the-chain-start-cases": Bug(
        "TestContextDropping",
        "TestReferenceState",
        (
            "test_trace_context_reads_back_from_a_chain_start",
            "test_trace_context_reads_back_from_a_batch_and_a_listing",
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
        (
            "test_expired_lease_frees_its_place_before_reaping",
            "test_expired_lease_frees_its_keys_place_before_reaping",
        ),
    ),
    "keyless-jobs-left-behind-fail-the-keyless-group-case": Bug(
        "TestKeylessLeftBehind",
        "TestReferenceState",
        ("test_per_key_limit_counts_jobs_without_a_key_as_one_group",),
    ),
    "unrecorded-limited-leases-fail-the-rollback-case": Bug(
        "TestUnrecordedLimit",
        "TestReferenceState",
        ("test_rolled_back_limited_acquire_leaves_its_jobs_and_places_free",),
    ),
    "id-ordered-keys-fail-the-key-order-case": Bug(
        "TestIdOrderKeyLimit",
        "TestReferenceState",
        ("test_per_key_limit_takes_each_keys_jobs_in_acquisition_order",),
    ),
    "ignored-rate-fails-the-rate-cases": Bug(
        "TestRateless",
        "TestReferenceState",
        (
            "test_rate_stops_at_the_window_count",
            "test_finished_job_does_not_free_a_start",
            "test_parallel_rate_acquires_stay_within_the_rate",
            "test_per_key_rate_counts_each_key_without_blocking_others",
            "test_rate_keeps_a_concurrency_limit_declared_beside_it",
        ),
    ),
    "keyless-rate-fails-the-per-key-rate-case": Bug(
        "TestKeylessRate",
        "TestReferenceState",
        ("test_per_key_rate_counts_each_key_without_blocking_others",),
    ),
    "racy-rate-fails-the-parallel-rate-case": Bug(
        "TestRacyRate",
        "TestReferenceState",
        ("test_parallel_rate_acquires_stay_within_the_rate",),
    ),
    "endless-window-fails-the-rollover-case": Bug(
        "TestEndlessWindow",
        "TestReferenceState",
        ("test_rate_window_rolls_over",),
    ),
    "fixed-windows-fail-the-sliding-window-case": Bug(
        "TestFixedWindowRate",
        "TestReferenceState",
        ("test_rate_window_slides_across_calendar_boundaries",),
    ),
    "continuation-without-its-key-fails-the-continuation-key-case": Bug(
        "TestKeyDroppingContinuation",
        "TestReferenceState",
        ("test_a_continuation_keeps_its_concurrency_key",),
    ),
    "duplicated-slots-fail-the-slot-dedup-case": Bug(
        "TestDuplicatingSlots",
        "TestReferenceState",
        ("test_a_slot_starts_one_chain_however_many_start_it",),
    ),
    "unflagged-blockers-fail-the-flag-case": Bug(
        "TestUnflaggedBlockers",
        "TestReferenceState",
        (
            "test_a_job_created_with_blockers_says_so_when_acquired",
            "test_a_deduplicated_start_waits_on_its_blockers_once",
        ),
    ),
    "silent-unblocking-fails-the-unblocked-queues-case": Bug(
        "TestSilentUnblock",
        "TestReferenceState",
        (
            "test_a_completion_names_the_queues_it_unblocks",
            "test_completing_a_blocker_from_outside_names_the_queues_it_unblocks",
        ),
    ),
    "unblocking-continuations-from-outside-fail-the-continued-blocker-case": Bug(
        "TestSettleUnblocks",
        "TestReferenceState",
        ("test_continuing_a_blocker_from_outside_leaves_its_dependents_waiting",),
    ),
    "dropped-blockers-of-a-deduplicated-start-fail-its-cases": Bug(
        "TestBlockerDroppingDedup",
        "TestReferenceState",
        (
            "test_a_deduplicated_start_waits_on_its_blockers_once",
            "test_a_deduplicated_start_with_a_missing_blocker_writes_nothing",
        ),
    ),
    "key-dropping-newest-listing-fails-the-dedup-listing-case": Bug(
        "TestKeyDroppingNewestListing",
        "TestReferenceState",
        ("test_chains_of_a_dedup_key_list_newest_first_within_a_window",),
    ),
    "countless-hand-off-fails-the-running-count-cases": Bug(
        "TestCountlessHandOff",
        "TestReferenceState",
        (
            "test_no_hand_off_while_more_jobs_run_than_a_lowered_limit",
            "test_hand_off_per_key_counts_keyless_jobs_as_one_group",
        ),
    ),
    "key-blind-hand-off-fails-the-per-key-hand-off-cases": Bug(
        "TestKeyBlindHandOff",
        "TestReferenceState",
        (
            "test_hand_off_per_key_stays_within_the_completed_jobs_key",
            "test_hand_off_per_key_hands_a_keyless_place_to_a_keyless_job",
        ),
    ),
    "marginless-hand-off-fails-the-margin-case": Bug(
        "TestMarginlessHandOff",
        "TestReferenceState",
        ("test_no_hand_off_when_the_lease_is_within_the_margin_of_its_end",),
    ),
    "hand-off-after-a-lost-lease-fails-the-lost-lease-case": Bug(
        "TestLostLeaseHandOff",
        "TestReferenceState",
        ("test_hand_off_with_a_lost_lease_raises_and_hands_nothing",),
    ),
    "racy-hand-off-fails-the-concurrent-hand-off-case": Bug(
        "TestRacyHandOff",
        "TestReferenceState",
        ("test_concurrent_hand_offs_hand_distinct_jobs_within_the_limit",),
    ),
    "microsecond-lease-hand-off-fails-the-lease-cases": Bug(
        "TestMicrosecondLeaseHandOff",
        "TestReferenceState",
        (
            "test_hand_off_leases_the_next_job_of_the_queue_to_the_owner",
            "test_a_chain_of_hand_offs_drains_the_backlog_in_acquisition_order",
        ),
    ),
    "creation-only-key-index-fails-the-moved-job-case": Bug(
        "TestCreationOnlyKeyIndex",
        "TestReferenceState",
        ("test_hand_off_per_key_follows_jobs_that_ran_were_cancelled_or_moved",),
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
