"""A ConfigurationError never shows a password (DESIGN section 8): not in its
message, and not in any exception a traceback of it would print."""

from __future__ import annotations

import traceback

import pytest

from queuert import Queuert
from queuert.errors import ConfigurationError
from queuert.urls import redact_message, redact_url, url_secrets

SECRET = "hunter2"


def printed(exc: BaseException) -> str:
    """Everything a traceback of ``exc`` shows."""
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    ("state", "notify"),
    [
        # PostgreSQL: password as a query parameter, in the user information, in a
        # URL that cannot be parsed, and in one missing "//".
        (f"postgresql://app@127.0.0.1/db?password={SECRET}&min_size=x", None),
        (f"postgresql://app:{SECRET}@127.0.0.1/db?max_size=0", None),
        (f"postgresql://app:{SECRET}@[::1/db", None),
        (f"postgresql:app:{SECRET}@127.0.0.1/db", None),
        (f"postgres://app@127.0.0.1/db?sslpassword={SECRET}&schema=Bad-Schema", None),
        # Redis notifier.
        ("memory://", f"redis://127.0.0.1:6379/0?password={SECRET}&hint_ttl=soon"),
        ("memory://", f"redis://:{SECRET}@127.0.0.1:6379/0?hint_ttl=soon"),
        ("memory://", f"redis:{SECRET}@127.0.0.1:6379"),
        ("memory://", f"redis://:{SECRET}@[::1:6379"),
        ("memory://", f"postgresql://app@127.0.0.1/db?password={SECRET}&channel_prefix=x&x=1&"),
        # SQLite: any URL it refuses.
        (f"sqlite:///jobs.db?password={SECRET}", None),
        (f"sqlite://app:{SECRET}@host/jobs.db", None),
        (f"sqlite:///jobs.db?busy_timeout_ms=x&token={SECRET}", None),
        (f"sqlite://app:{SECRET}@[bad/jobs.db", None),
        # No adapter for the scheme at all.
        (f"oracle://scott:{SECRET}@db.example/orcl?password={SECRET}", None),
        (f"oracle:scott:{SECRET}@db.example", None),
    ],
)
async def test_configuration_errors_never_show_a_password(state: str, notify: str | None) -> None:
    try:
        app = await Queuert.from_url(chains=[], state=state, notify=notify)
    except ConfigurationError as exc:
        assert SECRET not in printed(exc)
    else:  # only the PostgreSQL notifier case connects nothing and may be accepted
        await app.close()
        assert notify is not None and notify.startswith("postgresql")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"postgresql://u:{SECRET}@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://h/db?password={SECRET}&x=1", "postgresql://h/db?password=***&x=1"),
        (f"postgresql://h/db?x=1&PassWord={SECRET}", "postgresql://h/db?x=1&PassWord=***"),
        (f"redis://:{SECRET}@h:6379/0", "redis://:***@h:6379/0"),
        (f"postgresql:u:{SECRET}@h/db", "postgresql:***@h/db"),
        (f"u:{SECRET}@h", "u:***@h"),
        (f"postgresql://u:a/{SECRET}@h/db", "postgresql://u:***@h/db"),
        (f"postgresql://u:{SECRET}@[::1/db", "postgresql://u:***@[::1/db"),
        ("postgresql://u@h/db?sslmode=require", "postgresql://u@h/db?sslmode=require"),
        ("sqlite:///data@home/jobs.db", "sqlite:///data@home/jobs.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_redacted_urls_are_bounded() -> None:
    url = "postgresql://h/db?x=" + "y" * 10_000_000
    assert len(redact_url(url)) < 1_000


def test_redact_message_hides_every_spelling_of_the_secret() -> None:
    url = "postgresql://u:s%40cret@h/db?password=an+other"
    assert url_secrets(url) == ["an other", "an+other", "s%40cret", "s@cret"]
    message = redact_message("failed for s@cret (an other) at s%40cret", url)
    assert "cret" not in message and "other" not in message
