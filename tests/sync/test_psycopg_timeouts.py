"""A statement of the synchronous API that waits too long on a psycopg connection is
cancelled: the call raises a queuert error instead of blocking forever."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import psycopg
import pytest

import queuert
from queuert.sync import SyncClient
from tests.sync.conftest import SyncBackend


@dataclass
class Job:
    n: int


job_chain = queuert.chain("sync-timeout", input=Job, output=Job)


async def test_a_statement_stuck_on_a_lock_is_cancelled(
    backend: SyncBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend.url is None:
        pytest.skip("psycopg only")
    from queuert_postgres import psycopg_sync

    monkeypatch.setattr(psycopg_sync, "STATEMENT_TIMEOUT", 0.5)
    client = SyncClient(queuert.Queuert(state=backend.state, chains=[job_chain]))
    url = backend.url
    holding = threading.Event()
    release = threading.Event()

    def hold_key() -> None:
        # Takes the deduplication key and keeps its transaction open.
        with psycopg.connect(url) as conn:
            client.enqueue_job_chain(conn, job_chain, Job(1), dedup_key="held")
            holding.set()
            release.wait(timeout=30)
            conn.rollback()

    def wait_for_key() -> type[BaseException]:
        holding.wait(timeout=30)
        with psycopg.connect(url) as conn:
            try:
                client.enqueue_job_chain(conn, job_chain, Job(2), dedup_key="held")
            except queuert.QueuertError as exc:
                return type(exc)
            raise AssertionError("the second start did not wait for the key")

    holder = asyncio.create_task(asyncio.to_thread(hold_key))
    try:
        error = await asyncio.wait_for(asyncio.to_thread(wait_for_key), 20)
    finally:
        release.set()
        await holder
    assert error is queuert.TransientStateError


def test_the_watchdog_calls_only_what_is_still_armed() -> None:
    from queuert_postgres.psycopg_sync import _Watchdog

    watchdog = _Watchdog()
    fired: list[str] = []
    done = threading.Event()
    disarmed = watchdog.arm(0.05, lambda: fired.append("disarmed"))
    watchdog.disarm(disarmed)

    def armed() -> None:
        fired.append("armed")
        done.set()

    watchdog.arm(0.1, armed)
    assert done.wait(timeout=10)
    assert fired == ["armed"]


def test_an_earlier_alarm_armed_while_the_watchdog_sleeps_fires_on_time() -> None:
    from queuert_postgres.psycopg_sync import _Watchdog

    watchdog = _Watchdog()
    done = threading.Event()
    late = watchdog.arm(60, lambda: None)
    # The watchdog now sleeps until the late alarm; the early one must wake it.
    watchdog.arm(0.05, done.set)
    assert done.wait(timeout=10)
    watchdog.disarm(late)
