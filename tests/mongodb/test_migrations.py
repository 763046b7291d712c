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
    names = [spec.name for m in MIGRATIONS for spec in m.job_indexes]
    assert len(names) == len(set(names))


def test_recorded_version_only_grows() -> None:
    update = version_update(3)
    assert update["$max"] == {"version": 3}
    assert "$set" not in update


def test_stored_version() -> None:
    assert stored_version(None) is None
    assert stored_version({"_id": "schema"}) is None
    assert stored_version({"_id": "schema", "version": 2}) == 2
