"""The synchronous application example runs: an order checked out synchronously is
shipped by the asynchronous worker; a failed checkout leaves neither the order nor
its chain; a cancelled order's chain is cancelled with it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import queuert
from examples.sync_app import (
    Shipped,
    cancel_order,
    make_client,
    order_status,
    place_order,
    prepare,
    run,
)


async def test_an_order_checked_out_synchronously_ships(tmp_path: Path) -> None:
    outcome = await run(tmp_path / "shop.db")
    assert outcome.shipped == Shipped(order_id=42, parcels=1)
    assert outcome.status == "completed"
    assert outcome.orders == [(42, "placed")]


async def test_a_failed_checkout_leaves_nothing_and_a_cancel_cancels(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    app = await prepare(database)
    client = make_client(f"sqlite:///{database}")

    class PaymentDeclined(Exception):
        pass

    def failed_checkout() -> str:
        conn = sqlite3.connect(database)
        started: list[str] = []
        try:
            with pytest.raises(PaymentDeclined), conn:
                started.append(place_order(client, conn, 1))
                raise PaymentDeclined
        finally:
            conn.close()
        return started[0]

    def checkout_then_cancel() -> tuple[str, str | None]:
        conn = sqlite3.connect(database)
        try:
            with conn:
                chain_id = place_order(client, conn, 2)
        finally:
            conn.close()
        cancel_order(client, str(database), chain_id)
        return chain_id, order_status(client, str(database), chain_id)

    try:
        dropped = await asyncio.to_thread(failed_checkout)
        assert await app.get_chain(dropped) is None
        cancelled, status = await asyncio.to_thread(checkout_then_cancel)
        assert status == "cancelled"
        chain = await app.get_chain(cancelled)
        assert chain is not None and chain.status is queuert.JobStatus.CANCELLED
    finally:
        await app.close()
    conn = sqlite3.connect(database)
    rows = list(conn.execute("SELECT id, status FROM orders"))
    conn.close()
    assert rows == [(2, "cancelled")]
