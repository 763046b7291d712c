"""The versioned schema: index specifications and the migration plan (no server
needed)."""

from __future__ import annotations

from queuert_mongodb.migrations import (
    MIGRATIONS,
    SCHEMA_VERSION,
    migration_plan,
    stored_version,
    version_update,
)
from queuert_mongodb.names import Collections


def test_versions_count_up_from_one() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert MIGRATIONS[-1].version == SCHEMA_VERSION


def test_plan_holds_what_the_store_lacks_in_order() -> None:
    assert migration_plan(None) == MIGRATIONS
    assert migration_plan(0) == MIGRATIONS
    assert migration_plan(SCHEMA_VERSION) == ()
    assert migration_plan(SCHEMA_VERSION + 1) == ()


def test_chain_positions_are_unique() -> None:
    specs = {spec.name: spec for m in MIGRATIONS for spec in m.job_indexes}
    position = specs["queuert_chain_position"]
    assert position.keys == (("chain_id", 1), ("position", 1))
    assert position.options() == {"name": "queuert_chain_position", "unique": True}


def test_acquire_and_reap_indexes_hold_only_their_status() -> None:
    specs = {spec.name: spec for m in MIGRATIONS for spec in m.job_indexes}
    acquire = specs["queuert_acquire"].model().document
    assert acquire["partialFilterExpression"] == {"status": "pending"}
    assert list(acquire["key"].items()) == [
        ("queue", 1),
        ("scheduled_at", 1),
        ("priority", -1),
        ("_id", 1),
    ]
    reap = specs["queuert_reap"].model().document
    assert reap["partialFilterExpression"] == {"status": "running"}
    head = specs["queuert_chain_head"].model().document
    assert list(head["key"]) == ["next_job_id", "chain_id"]
    assert "unique" not in head


def test_index_names_are_unique() -> None:
    names = [spec.name for m in MIGRATIONS for spec in (*m.job_indexes, *m.indexes)]
    assert len(names) == len(set(names))


def test_version_2_creates_the_collections_of_the_later_operations() -> None:
    assert SCHEMA_VERSION == 2
    (second,) = migration_plan(1)
    assert second.version == 2
    assert second.collections == ("blockers", "dedup", "workers", "slots", "limits")
    names = Collections.for_prefix("qt_")
    assert [names.named(role) for role in second.collections] == [
        "qt_job_blockers",
        "qt_job_dedup",
        "qt_workers",
        "qt_schedule_slots",
        "qt_queue_limits",
    ]


def test_version_2_indexes_by_collection() -> None:
    groups = MIGRATIONS[1].index_groups()
    assert list(groups) == ["jobs", "blockers", "slots", "workers"]
    by_name = {spec.name: spec for specs in groups.values() for spec in specs}
    ended = by_name["queuert_ended"].model().document
    # Purging walks chain ends by end time (equality on next_job_id first).
    assert list(ended["key"].items()) == [("next_job_id", 1), ("completed_at", 1)]
    assert ended["partialFilterExpression"] == {"completed_at": {"$type": "date"}}
    running = by_name["queuert_running"].model().document
    assert list(running["key"]) == ["queue", "concurrency_key", "leased_until"]
    assert running["partialFilterExpression"] == {"status": "running"}
    dedup = by_name["queuert_dedup_key"].model().document
    assert dedup["partialFilterExpression"] == {"dedup_key": {"$type": "string"}}
    # A job's blockers are stored once per position.
    edges = by_name["queuert_blockers_job"]
    assert edges.collection == "blockers" and edges.unique
    assert edges.keys == (("job_id", 1), ("position", 1))
    assert by_name["queuert_blockers_chain"].keys[0] == ("blocker_chain_id", 1)
    assert by_name["queuert_blockers_waiting"].keys == (("chain_id", 1),)
    assert by_name["queuert_slots_chain"].collection == "slots"
    assert by_name["queuert_workers_seen"].collection == "workers"


def test_version_1_indexes_stay_on_the_jobs_collection() -> None:
    assert list(MIGRATIONS[0].index_groups()) == ["jobs"]
    assert MIGRATIONS[0].collections == ()


def test_recorded_version_only_grows() -> None:
    update = version_update(3)
    assert update["$max"] == {"version": 3}
    assert "$set" not in update


def test_stored_version() -> None:
    assert stored_version(None) is None
    assert stored_version({"_id": "schema"}) is None
    assert stored_version({"_id": "schema", "version": 2}) == 2
