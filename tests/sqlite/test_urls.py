"""Configuration by URL and the ``sqlite`` entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from queuert.errors import ConfigurationError
from queuert.urls import state_from_url
from queuert_sqlite import SqliteStateAdapter, from_url


async def test_three_slashes_is_a_path_relative_to_the_working_directory() -> None:
    state = await from_url("sqlite:///data/jobs.db")
    assert state.path == "data/jobs.db"


async def test_four_slashes_is_an_absolute_path() -> None:
    state = await from_url("sqlite:////var/lib/app/jobs.db")
    assert state.path == "/var/lib/app/jobs.db"


@pytest.mark.parametrize("url", ["sqlite://:memory:", "sqlite:///:memory:"])
async def test_memory_urls(url: str) -> None:
    state = await from_url(url)
    assert state.path == ":memory:"
    assert not state.capabilities.multi_process


async def test_options_in_the_query_string() -> None:
    state = await from_url("sqlite:///jobs.db?table_prefix=app_&busy_timeout_ms=250")
    assert (state.table_prefix, state.busy_timeout_ms) == ("app_", 250)


async def test_percent_encoded_paths_are_decoded() -> None:
    state = await from_url("sqlite:///my%20jobs.db")
    assert state.path == "my jobs.db"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("postgresql://host/db", "not a sqlite"),
        ("sqlite://", "names no database"),
        ("sqlite:///", "names no database"),
        ("sqlite://somehost/jobs.db", "has a host"),
        ("sqlite:///jobs.db?colour=blue", "colour"),
        ("sqlite:///jobs.db?busy_timeout_ms=many", "busy_timeout_ms"),
        ("sqlite:///jobs.db?busy_timeout_ms=-1", "busy_timeout_ms"),
        ("sqlite:///jobs.db?table_prefix=a-b", "table_prefix"),
    ],
)
async def test_bad_urls_are_rejected_naming_the_problem(url: str, fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        await from_url(url)


async def test_the_entry_point_makes_the_scheme_available(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = await state_from_url("sqlite:///jobs.db")
    try:
        assert isinstance(state, SqliteStateAdapter)
        await state.migrate()
        await state.check_schema()
        assert state.path == "jobs.db"
    finally:
        await state.close()


async def test_the_class_method_builds_the_same_adapter() -> None:
    state = await SqliteStateAdapter.from_url("sqlite:////tmp/x.db")
    assert state.path == "/tmp/x.db"
