"""A synchronous application starting chains: ``python -m examples.sync_app``.

The application's code is synchronous (sqlite3 here; a psycopg ``Connection`` on
PostgreSQL is used the same way): it inserts an order and starts the chain that
ships it in one transaction, through :class:`queuert.sync.SyncClient`. The worker
is asynchronous, as always; here it runs in the same process for the
demonstration, where a deployment runs ``queuert worker``.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import queuert
from queuert.sync import SyncClient


# --8<-- [start:chains]
@dataclass
class OrderInput:
    order_id: int


@dataclass
class Shipped:
    order_id: int
    parcels: int


ship_order = queuert.chain("ship-order", input=OrderInput, output=Shipped)
# --8<-- [end:chains]


# --8<-- [start:client]
def make_client(state_url: str, notify_url: str = "none") -> SyncClient:
    """The synchronous client, from the URLs the workers use. It opens no connection
    and needs no event loop: every call runs on the connection it is given."""
    return SyncClient.from_url(chains=[ship_order], state=state_url, notify=notify_url)
    # --8<-- [end:client]


# --8<-- [start:place-order]
def place_order(client: SyncClient, conn: sqlite3.Connection, order_id: int) -> str:
    """Insert the order and start its chain in the caller's transaction: both exist
    once the caller commits, neither after a rollback."""
    handle = client.enqueue_job_chain(conn, ship_order, OrderInput(order_id))
    conn.execute(
        "INSERT INTO orders (id, status, chain_id) VALUES (?, 'placed', ?)",
        (order_id, handle.id),
    )
    return handle.id


def checkout(client: SyncClient, database: str, order_id: int) -> str:
    conn = sqlite3.connect(database)
    try:
        # The signals leave after the commit; sqlite3's `with conn` commits when the
        # block exits (rolls back on an error).
        with client.with_notify(), conn:
            chain_id = place_order(client, conn, order_id)
        return chain_id
    finally:
        conn.close()
        # --8<-- [end:place-order]


# --8<-- [start:operate]
def order_status(client: SyncClient, database: str, chain_id: str) -> str | None:
    """The chain's status as the application's own transaction sees it."""
    conn = sqlite3.connect(database)
    try:
        with conn:
            chain = client.get_chain(conn, chain_id)
        return None if chain is None else chain.status.value
    finally:
        conn.close()


def cancel_order(client: SyncClient, database: str, chain_id: str) -> None:
    conn = sqlite3.connect(database)
    try:
        with conn:
            conn.execute("UPDATE orders SET status = 'cancelled' WHERE chain_id = ?", (chain_id,))
            client.cancel_chain(conn, chain_id)
    finally:
        conn.close()
        # --8<-- [end:operate]


# --8<-- [start:worker]
def make_worker(app: queuert.Queuert[Any]) -> queuert.Worker[Any]:
    worker = app.worker(concurrency=4, poll_interval=0.1)

    @worker.handler(ship_order)
    async def ship(job: queuert.Job[OrderInput], ctx: queuert.JobContext[Any, Shipped]) -> Shipped:
        async def commit(tx: Any, enqueue_job: queuert.EnqueueJob[Shipped]) -> Shipped:
            return Shipped(order_id=job.input.order_id, parcels=1)

        return await ctx.finalize(commit)

    return worker
    # --8<-- [end:worker]


@dataclass
class Outcome:
    shipped: Shipped
    status: str | None
    orders: list[tuple[int, str]]


APP_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, status TEXT, chain_id TEXT)"
)


async def prepare(database: Path) -> queuert.Queuert[Any]:
    """The workers' application on ``database``, migrated, and the orders table."""
    url = f"sqlite:///{database}"
    app = await queuert.Queuert.from_url(chains=[ship_order], state=url, notify="none")
    await app.migrate()
    conn = sqlite3.connect(database)
    with conn:
        conn.execute(APP_SCHEMA)
    conn.close()
    return app


async def run(database: Path) -> Outcome:
    """Migrate ``database`` (an absolute path), start a worker, check an order out
    synchronously (on a thread, as a synchronous web server would) and wait for its
    chain."""
    url = f"sqlite:///{database}"
    app = await prepare(database)
    client = make_client(url)
    try:
        async with make_worker(app):
            chain_id = await asyncio.to_thread(checkout, client, str(database), 42)
            shipped = await app.wait_for_chain(queuert.ChainHandle(chain_id, ship_order))
        status = await asyncio.to_thread(order_status, client, str(database), chain_id)
    finally:
        client.close()
        await app.close()
    conn = sqlite3.connect(database)
    orders = [(int(r[0]), str(r[1])) for r in conn.execute("SELECT id, status FROM orders")]
    conn.close()
    return Outcome(shipped=shipped, status=status, orders=orders)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outcome = asyncio.run(run(Path(tmp).resolve() / "shop.db"))
    print(f"order 42 shipped: {outcome.shipped}, chain {outcome.status}")


if __name__ == "__main__":
    main()
