"""Parsing mongodb:// and mongodb+srv:// URLs, and the entry points that select the
adapters by URL (no server needed)."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from queuert.errors import ConfigurationError, TransientStateError
from queuert.urls import NOTIFY_GROUP, STATE_GROUP, state_from_url
from queuert_mongodb.urls import parse_url


def test_path_names_the_database_and_the_url_is_kept_for_the_client() -> None:
    parsed = parse_url("mongodb://db1.example.net:27017/jobs?replicaSet=rs0")
    assert parsed.database == "jobs"
    assert parsed.collection_prefix == "queuert_"
    assert parsed.client_url == "mongodb://db1.example.net:27017/jobs?replicaSet=rs0"


def test_defaults_without_path_or_options() -> None:
    parsed = parse_url("mongodb://localhost")
    assert (parsed.database, parsed.collection_prefix) == ("queuert", "queuert_")


def test_collection_prefix_is_taken_out_of_the_query() -> None:
    parsed = parse_url(
        "mongodb://h1:27017,h2:27017/app?replicaSet=rs0&collection_prefix=jobs_&w=majority"
    )
    assert parsed.collection_prefix == "jobs_"
    assert parsed.database == "app"
    assert parsed.client_url == "mongodb://h1:27017,h2:27017/app?replicaSet=rs0&w=majority"


def test_srv_url_is_accepted_without_resolving_it() -> None:
    parsed = parse_url("mongodb+srv://user:secret@cluster0.example.net/orders?retryWrites=true")
    assert parsed.database == "orders"
    assert parsed.client_url.startswith("mongodb+srv://user:secret@cluster0.example.net/orders")


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql://localhost/db", "scheme"),
        ("mongodb:///db", "no host"),
        ("mongodb://user@/db", "no host"),
        ("mongodb://localhost/a.b", "database name"),
        ("mongodb://localhost/a/b", "one database"),
        ("mongodb://localhost/db?collection_prefix=$bad", "collection_prefix"),
        ("mongodb://localhost/db?collection_prefix=a_&collection_prefix=b_", "twice"),
        ("mongodb://localhost/db#frag", "fragment"),
    ],
)
def test_invalid_urls_are_refused_naming_the_problem(url: str, named: str) -> None:
    with pytest.raises(ConfigurationError, match=named):
        parse_url(url)


def test_error_hides_the_password() -> None:
    with pytest.raises(ConfigurationError) as raised:
        parse_url("mongodb://user:hunter2@localhost/a.b")
    assert "hunter2" not in str(raised.value)
    assert "***" in str(raised.value)


def test_non_string_url_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        parse_url(b"mongodb://localhost")


@pytest.mark.parametrize("group", [STATE_GROUP, NOTIFY_GROUP])
def test_both_schemes_are_registered_for_both_ports(group: str) -> None:
    registered = {entry.name: entry.value for entry in entry_points(group=group)}
    module = "state" if group == STATE_GROUP else "notify"
    for scheme in ("mongodb", "mongodb+srv"):
        assert registered.get(scheme) == f"queuert_mongodb.{module}:from_url"


async def test_state_url_reaches_the_adapter_which_reports_an_unreachable_server() -> None:
    # Port 1 refuses connections: the adapter tries the server and says so in time.
    with pytest.raises(TransientStateError):
        await state_from_url("mongodb://127.0.0.1:1/jobs?timeoutMS=300")


async def test_invalid_client_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="serverSelectionTimeoutMS"):
        await state_from_url("mongodb://127.0.0.1:1/jobs?serverSelectionTimeoutMS=soon")
