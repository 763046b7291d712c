"""``queuert schedules``: the application's schedules with their next and last
slots, as a table and as JSON, run as a user runs the command."""

from __future__ import annotations

from datetime import UTC, datetime

import queuert
from queuert.schedules import start_slot
from tests.cli.schedule_app import HOURLY, NIGHTLY, declare, ticks
from tests.cli.test_cli import Store, assert_one_line_error, queuert_cli, store

__all__ = ["store"]  # the fixture, shared with the other command tests

APP = "tests.cli.schedule_app:make_app"


async def test_schedules_lists_next_and_last_slots(store: Store) -> None:
    app = await queuert.Queuert.from_url(chains=[ticks], state=store.url, notify="none")
    try:
        await app.migrate()
        declare(app)
        slot = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        assert await start_slot(app, app.schedules[HOURLY], slot)
        (started,) = (await app.list_chains()).items
    finally:
        await app.close()

    as_json = await queuert_cli(store, "--app", APP, "--json", "schedules")
    assert as_json.code == 0, as_json.err
    by_name = {row["name"]: row for row in as_json.json()}
    assert set(by_name) == {HOURLY, NIGHTLY}
    hourly, nightly = by_name[HOURLY], by_name[NIGHTLY]
    assert hourly["every"] == 3600 and hourly["cron"] is None and hourly["chain"] == "cli-ticks"
    assert hourly["last_slot"] == slot.isoformat() and hourly["last_chain_id"] == started.id
    assert datetime.fromisoformat(hourly["next_slot"]) > datetime.now(UTC)
    assert nightly["cron"] == "30 2 * * *" and nightly["timezone"] == "Europe/Paris"
    assert nightly["last_slot"] is None and nightly["last_chain_id"] is None

    table = await queuert_cli(store, "--app", APP, "schedules")
    assert table.code == 0, table.err
    assert HOURLY in table.out and NIGHTLY in table.out and started.id in table.out
    assert "30 2 * * *" in table.out and "2025-03-01 12:00:00" in table.out


async def test_schedules_needs_the_application(store: Store) -> None:
    assert_one_line_error(await queuert_cli(store, "schedules"), "--app")
