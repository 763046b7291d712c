"""Dashboard actions over HTTP: refused without auth (read-only) and with wrong
credentials, refused without the confirmation page's CSRF token, and done with
both: cancel and delete through the library's API."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio

import queuert
from queuert import ConfigurationError, JobStatus, ValidationError
from queuert_dashboard import Auth, basic_auth_from_env, create_app
from tests.dashboard.test_pages import NOTES, Note, Site, run_notes


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def auth(monkeypatch: pytest.MonkeyPatch) -> Auth:
    monkeypatch.setenv("QUEUERT_DASHBOARD_USER", "ops")
    monkeypatch.setenv("QUEUERT_DASHBOARD_PASSWORD", "s3cret")
    return basic_auth_from_env()


async def open_site(auth: Auth | None) -> AsyncIterator[Site]:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[NOTES])
    await app.migrate()
    transport = httpx.ASGITransport(app=create_app(app, auth=auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://dash") as client:
        yield Site(app, client)
    await app.close()


@pytest_asyncio.fixture
async def guarded(auth: Auth) -> AsyncIterator[Site]:
    async for site in open_site(auth):
        yield site


@pytest_asyncio.fixture
async def read_only() -> AsyncIterator[Site]:
    async for site in open_site(None):
        yield site


async def later_chain(site: Site) -> str:
    handle = await site.app.enqueue_job_chain(None, NOTES, Note("x"), delay=timedelta(hours=1))
    return handle.id


def token_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


async def test_without_auth_the_dashboard_is_read_only(read_only: Site) -> None:
    chain_id = await later_chain(read_only)
    page = await read_only.client.get(f"/chains/{chain_id}")
    assert "Read-only" in page.text and 'id="cancel"' not in page.text
    assert (await read_only.client.get(f"/chains/{chain_id}/cancel")).status_code == 403
    posted = await read_only.client.post(f"/chains/{chain_id}/cancel", data={"csrf_token": "x"})
    assert posted.status_code == 403
    record = await read_only.app.get_chain(chain_id)
    assert record is not None and record.status is JobStatus.PENDING


async def test_wrong_credentials_are_refused(guarded: Site) -> None:
    chain_id = await later_chain(guarded)
    for headers in ({}, basic("ops", "wrong"), {"Authorization": "Basic !!"}):
        page = await guarded.client.get(f"/chains/{chain_id}/cancel", headers=headers)
        assert page.status_code == 401
        assert page.headers["www-authenticate"] == 'Basic realm="queuert"'


async def test_an_action_needs_the_confirmation_pages_token(guarded: Site) -> None:
    chain_id = await later_chain(guarded)
    headers = basic("ops", "s3cret")
    confirm = await guarded.client.get(f"/chains/{chain_id}/cancel", headers=headers)
    assert confirm.status_code == 200
    token = token_of(confirm)
    guarded.client.cookies.clear()
    # A forged form without the cookie the confirmation page set.
    forged = await guarded.client.post(
        f"/chains/{chain_id}/cancel", data={"csrf_token": token}, headers=headers
    )
    assert forged.status_code == 403
    record = await guarded.app.get_chain(chain_id)
    assert record is not None and record.status is JobStatus.PENDING


async def test_cancel_and_delete_with_auth_and_token(guarded: Site) -> None:
    chain_id = await later_chain(guarded)
    headers = basic("ops", "s3cret")
    page = await guarded.client.get(f"/chains/{chain_id}", headers=headers)
    assert 'id="cancel"' in page.text
    confirm = await guarded.client.get(f"/chains/{chain_id}/cancel", headers=headers)
    done = await guarded.client.post(
        f"/chains/{chain_id}/cancel", data={"csrf_token": token_of(confirm)}, headers=headers
    )
    assert done.status_code == 303 and done.headers["location"].endswith(f"/chains/{chain_id}")
    record = await guarded.app.get_chain(chain_id)
    assert record is not None and record.status is JobStatus.CANCELLED

    confirm = await guarded.client.get(f"/chains/{chain_id}/delete", headers=headers)
    done = await guarded.client.post(
        f"/chains/{chain_id}/delete", data={"csrf_token": token_of(confirm)}, headers=headers
    )
    assert done.status_code == 303
    assert await guarded.app.get_chain(chain_id) is None


async def test_unknown_actions_and_chains_are_not_found(guarded: Site) -> None:
    headers = basic("ops", "s3cret")
    chain_id = await later_chain(guarded)
    assert (
        await guarded.client.get(f"/chains/{chain_id}/explode", headers=headers)
    ).status_code == 404
    assert (await guarded.client.get("/chains/nope/cancel", headers=headers)).status_code == 404


def test_basic_auth_needs_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("QUEUERT_DASHBOARD_USER", raising=False)
    monkeypatch.setenv("QUEUERT_DASHBOARD_PASSWORD", "s3cret")
    with pytest.raises(ConfigurationError, match="QUEUERT_DASHBOARD_USER"):
        basic_auth_from_env()


def test_auth_must_be_callable() -> None:
    app = queuert.Queuert(state=queuert.MemoryStateAdapter(), chains=[NOTES])
    with pytest.raises(ValidationError, match="auth"):
        create_app(app, auth="ops:s3cret")  # type: ignore[arg-type]


async def test_retry_runs_a_failed_chain_again(guarded: Site) -> None:
    headers = basic("ops", "s3cret")
    pending = await later_chain(guarded)
    page = await guarded.client.get(f"/chains/{pending}", headers=headers)
    assert 'id="cancel"' in page.text and 'id="retry"' not in page.text
    (failed,) = await run_notes(guarded.app, ["fail"])
    page = await guarded.client.get(f"/chains/{failed}", headers=headers)
    assert 'id="retry"' in page.text and 'id="cancel"' not in page.text

    assert (await guarded.client.get(f"/chains/{failed}/retry")).status_code == 401
    confirm = await guarded.client.get(f"/chains/{failed}/retry", headers=headers)
    assert "Retry the chain" in confirm.text
    done = await guarded.client.post(
        f"/chains/{failed}/retry", data={"csrf_token": token_of(confirm)}, headers=headers
    )
    assert done.status_code == 303 and done.headers["location"].endswith(f"/chains/{failed}")
    record = await guarded.app.get_chain(failed)
    assert record is not None and record.status is JobStatus.PENDING

    # A chain that has not ended cannot be retried: refused, and nothing changes.
    confirm = await guarded.client.get(f"/chains/{pending}/retry", headers=headers)
    refused = await guarded.client.post(
        f"/chains/{pending}/retry", data={"csrf_token": token_of(confirm)}, headers=headers
    )
    assert refused.status_code == 409 and "only a failed or cancelled chain" in refused.text
