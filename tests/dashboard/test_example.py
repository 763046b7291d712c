"""The dashboard mounted as docs/dashboard.md shows it: pages under the prefix,
actions only with the environment's credentials."""

from __future__ import annotations

import base64

import httpx
import pytest

import queuert
from examples.dashboard import with_dashboard
from tests.dashboard.test_pages import NOTES, Note


async def test_the_mounted_dashboard_serves_pages_and_guards_actions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QUEUERT_DASHBOARD_USER", "ops")
    monkeypatch.setenv("QUEUERT_DASHBOARD_PASSWORD", "s3cret")
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[NOTES])
    await app.migrate()
    handle = await app.enqueue_job_chain(None, NOTES, Note("mounted"))
    transport = httpx.ASGITransport(app=with_dashboard(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://main") as client:
        assert (await client.get("/queuert/")).status_code == 200
        assert (await client.get("/queuert/workers")).status_code == 200
        confirm = f"/queuert/chains/{handle.id}/cancel"
        assert (await client.get(confirm)).status_code == 401
        credentials = base64.b64encode(b"ops:s3cret").decode()
        allowed = await client.get(confirm, headers={"Authorization": f"Basic {credentials}"})
        assert allowed.status_code == 200 and "Cancel the chain" in allowed.text
    await app.close()
