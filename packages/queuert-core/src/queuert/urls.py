"""Choose adapters by URL.

The URL's scheme selects an adapter among those *installed*: every adapter
distribution registers an entry point named after its scheme in the group
``queuert.state`` or ``queuert.notify``, pointing at an async factory
``from_url(url) -> adapter`` (a class with a ``from_url`` class method is
accepted too). Installing ``queuert-postgres`` is what makes
``postgresql://`` work.

::

    state = await state_from_url("sqlite:///jobs.db")
    notify = await notify_from_url("redis://localhost:6379/0")   # "none": poll only

    # No URL: read QUEUERT_STATE_URL / QUEUERT_NOTIFY_URL from the environment.
    state = await state_from_url()
    notify = await notify_from_url()    # None when QUEUERT_NOTIFY_URL is unset

Every error is a :class:`~queuert.errors.ConfigurationError` naming the URL
(with any password replaced by ``***``).
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Coroutine, Mapping
from importlib.metadata import EntryPoint, PackageNotFoundError, distribution, entry_points
from typing import Any, TypeVar
from urllib.parse import unquote, unquote_plus

from queuert.drive import SuspendedError, drive
from queuert.errors import ConfigurationError, QueuertError
from queuert.ports.notify import NotifyAdapter
from queuert.ports.state import StateAdapter
from queuert.validation import clip, show

T = TypeVar("T")

STATE_GROUP = "queuert.state"
NOTIFY_GROUP = "queuert.notify"
SYNC_STATE_GROUP = "queuert.sync_state"
"""Factories ``from_url(url) -> StateAdapter`` that build an adapter for
:mod:`queuert.sync` without connecting, for schemes whose ``queuert.state``
factory connects (see :func:`state_for_sync`)."""
STATE_URL_ENV = "QUEUERT_STATE_URL"
NOTIFY_URL_ENV = "QUEUERT_NOTIFY_URL"

#: Notify URL values meaning "no notifier: workers poll".
NO_NOTIFY = frozenset({"", "none"})

# Which distribution provides a scheme, to tell the user what to install.
_STATE_DISTRIBUTIONS: Mapping[str, str] = {
    "postgresql": "queuert-postgres",
    "postgres": "queuert-postgres",
    "sqlite": "queuert-sqlite",
    "mongodb": "queuert-mongodb",
    "mongodb+srv": "queuert-mongodb",
}
_NOTIFY_DISTRIBUTIONS: Mapping[str, str] = {
    "postgresql": "queuert-postgres",
    "postgres": "queuert-postgres",
    "redis": "queuert-redis-notify",
    "rediss": "queuert-redis-notify",
}

# RFC 3986 scheme, followed by "://" so that "C:\\jobs.db" or "host:5432" are
# not mistaken for URLs.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://")


async def state_from_url(url: str | None = None) -> StateAdapter[Any]:
    """Build the state adapter that ``url``'s scheme selects; ``None`` reads the
    URL from ``QUEUERT_STATE_URL`` (see :func:`state_url_from_env`).

    Raises :class:`~queuert.errors.ConfigurationError` when the URL is empty
    or malformed, when no installed distribution provides its scheme (naming
    the one to install when it is known, else listing the installed schemes),
    or when the adapter rejects the URL. Errors the factory raises while
    connecting propagate unchanged.
    """
    if url is None:
        url = state_url_from_env()
    adapter = await _build(STATE_GROUP, url)
    if not isinstance(adapter, StateAdapter):
        raise ConfigurationError(
            f"the {STATE_GROUP!r} adapter for {redact_url(url)!r} returned "
            f"{type(adapter).__name__}, not a StateAdapter"
        )
    return adapter


async def notify_from_url(url: str | None = None) -> NotifyAdapter | None:
    """Build the notify adapter that ``url``'s scheme selects; ``None`` reads the
    URL from ``QUEUERT_NOTIFY_URL`` (see :func:`notify_url_from_env`).

    ``""`` and ``"none"`` (and an unset variable) mean no notifier: workers
    poll, and this returns ``None``. Raises
    :class:`~queuert.errors.ConfigurationError` like :func:`state_from_url`.
    """
    if url is None:
        url = notify_url_from_env()
    if url is None or (isinstance(url, str) and url.strip().lower() in NO_NOTIFY):
        return None
    adapter = await _build(NOTIFY_GROUP, url)
    if not isinstance(adapter, NotifyAdapter):
        raise ConfigurationError(
            f"the {NOTIFY_GROUP!r} adapter for {redact_url(url)!r} returned "
            f"{type(adapter).__name__}, not a NotifyAdapter"
        )
    return adapter


def state_for_sync(url: str | None = None) -> StateAdapter[Any]:
    """The state adapter for ``url`` (``None`` reads ``QUEUERT_STATE_URL``) as
    :mod:`queuert.sync` uses it, built without an event loop and without connecting:
    through the ``queuert.sync_state`` factory of the scheme when its distribution
    registers one (PostgreSQL, whose usual factory opens a pool), else through its
    ``queuert.state`` factory, which must then open nothing (SQLite, memory).

    Raises :class:`~queuert.errors.ConfigurationError` as :func:`state_from_url`
    does, and when the scheme's factory would connect."""
    if url is None:
        url = state_url_from_env()
    group = SYNC_STATE_GROUP if _find(SYNC_STATE_GROUP, url_scheme(url)) else STATE_GROUP
    adapter = _build_without_loop(group, url)
    if not isinstance(adapter, StateAdapter):
        raise ConfigurationError(
            f"the {group!r} adapter for {redact_url(url)!r} returned "
            f"{type(adapter).__name__}, not a StateAdapter"
        )
    return adapter


def notify_for_sync(url: str | None = None) -> NotifyAdapter | None:
    """The notify adapter for ``url`` as :func:`notify_from_url` builds it, without an
    event loop: its factory must open nothing (those of ``queuert-redis-notify`` and
    ``queuert-postgres`` do not). :mod:`queuert.sync` uses it for its configuration
    and its :meth:`~queuert.ports.notify.NotifyAdapter.sync_publisher`. Raises
    :class:`~queuert.errors.ConfigurationError` as :func:`notify_from_url` does, and
    when the factory would connect."""
    notify: NotifyAdapter | None = _without_loop(notify_from_url(url), url or "")
    return notify


def _build_without_loop(group: str, url: str) -> object:
    return _without_loop(_build(group, url), url)


def _without_loop(operation: Coroutine[Any, Any, T], url: str) -> T:
    try:
        return drive(operation)
    except SuspendedError:
        raise ConfigurationError(
            f"the adapter for {redact_url(url)!r} connects when it is built, so it cannot "
            "be built for the synchronous API: build the Queuert application yourself"
        ) from None


def state_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The state URL in ``QUEUERT_STATE_URL`` (of ``environ``, default
    ``os.environ``). Raises :class:`~queuert.errors.ConfigurationError` when it
    is unset or empty."""
    env = os.environ if environ is None else environ
    url = env.get(STATE_URL_ENV, "").strip()
    if not url:
        raise ConfigurationError(
            f"{STATE_URL_ENV} is not set: give it a state URL such as "
            "'sqlite:///jobs.db' or 'postgresql://user@host/db'"
        )
    return url


def notify_url_from_env(environ: Mapping[str, str] | None = None) -> str | None:
    """The notify URL in ``QUEUERT_NOTIFY_URL`` (of ``environ``, default
    ``os.environ``), or ``None`` when it is unset, empty or ``"none"``."""
    env = os.environ if environ is None else environ
    url = env.get(NOTIFY_URL_ENV, "").strip()
    if url.lower() in NO_NOTIFY:
        return None
    return url


def installed_schemes(group: str) -> list[str]:
    """The schemes installed adapters provide in ``group`` (``"queuert.state"``
    or ``"queuert.notify"``), sorted."""
    return sorted({entry.name for entry in entry_points(group=group)})


def url_scheme(url: object) -> str:
    """The lower-cased scheme of ``url``. Raises
    :class:`~queuert.errors.ConfigurationError` when ``url`` is not a string of
    the form ``scheme://...``."""
    if not isinstance(url, str):
        raise ConfigurationError(f"an adapter URL must be a string, got {show(url)}")
    match = _URL.match(url.strip())
    if match is None:
        raise ConfigurationError(
            f"malformed adapter URL {redact_url(url)!r}: expected 'scheme://...', "
            "for example 'sqlite:///jobs.db', 'postgresql://host/db' or 'memory://'"
        )
    return match.group("scheme").lower()


# Query parameters whose values are secrets (password=, sslpassword=, token=...).
_SECRET_PARAMETER = re.compile(r"pass|secret|token|key|auth|credential", re.IGNORECASE)
_QUERY_ITEM = re.compile(r"(?:(?<=[?&;])|^)(?P<key>[^=&;#]*)=(?P<value>[^&;#]*)")
_SCHEME_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_MAX_URL_SHOWN = 300


def redact_url(url: object) -> str:
    """``url`` fit for messages and logs: the password of its user information
    (``user:***@``) and the values of query parameters that hold secrets
    (``?password=***``) are replaced, also in a URL that is malformed or lacks
    ``//``, and at most a bounded prefix of it is kept. Every adapter's URL
    parsing quotes URLs through this function."""
    if not isinstance(url, str):
        return show(url)
    text = url
    for start, end in reversed(_secret_spans(url)):
        text = f"{text[:start]}***{text[end:]}"
    return clip(text, _MAX_URL_SHOWN)


def url_secrets(url: object) -> list[str]:
    """The secrets :func:`redact_url` hides in ``url``, as written and
    percent-decoded, longest first."""
    if not isinstance(url, str):
        return []
    found = {url[start:end] for start, end in _secret_spans(url)}
    found |= {unquote_plus(secret) for secret in found} | {unquote(secret) for secret in found}
    # Ties in length are ordered by text so that the result does not depend on
    # string hashing.
    return sorted((secret for secret in found if secret), key=lambda s: (-len(s), s))


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """Where the secrets of ``url`` are, in order: the password of the user
    information, then values of query parameters named like secrets."""
    spans: list[tuple[int, int]] = []
    # The user information ends at the last "@" before the query or fragment (a
    # password may hold an unencoded "/"); without "//" nothing tells where a
    # scheme ends, so everything before it counts.
    start = match.end() if (match := _SCHEME_AUTHORITY.match(url)) else 0
    end = len(url)
    for mark in "?#":
        found = url.find(mark, start)
        if found != -1:
            end = min(end, found)
    at = url.rfind("@", start, end)
    colon = url.find(":", start, at) if at != -1 else -1
    if colon != -1 and colon + 1 < at:
        spans.append((colon + 1, at))
    query = url.find("?", max(at, start))
    if query != -1:
        fragment = url.find("#", query)
        stop = len(url) if fragment == -1 else fragment
        for item in _QUERY_ITEM.finditer(url, query + 1, stop):
            if _SECRET_PARAMETER.search(unquote_plus(item["key"])) and item["value"]:
                spans.append((item.start("value"), item.end("value")))
    return spans


def redact_message(text: str, url: str) -> str:
    """``text`` (an error message that may quote ``url`` or parts of it) with every
    secret of ``url`` replaced by ``***``."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


async def _build(group: str, url: str) -> object:
    scheme = url_scheme(url)
    url = url.strip()
    entry = _find(group, scheme)
    if entry is None:
        raise ConfigurationError(_missing_message(group, scheme, url))
    try:
        target = entry.load()
    except Exception as exc:
        raise ConfigurationError(
            f"the adapter for scheme {scheme!r} ({entry.value}) in {redact_url(url)!r} "
            f"cannot be imported: {exc}"
        ) from exc
    factory: Any = getattr(target, "from_url", None) if inspect.isclass(target) else target
    if not callable(factory):
        raise ConfigurationError(
            f"entry point {scheme!r} of group {group!r} ({entry.value}) is not an async "
            "from_url(url) factory (nor a class with a from_url class method)"
        )
    try:
        result = factory(url)
        if inspect.isawaitable(result):
            result = await result
    except (QueuertError, ValueError, TypeError) as exc:
        message = str(exc)
        clean = redact_message(message, url)
        if clean != message:
            # The adapter quoted a secret: raise a redacted copy, without the
            # original (whose message would show the secret in a traceback).
            raise (
                type(exc)(clean)
                if isinstance(exc, ConfigurationError)
                else ConfigurationError(f"invalid adapter URL {redact_url(url)!r}: {clean}")
            ) from None
        if isinstance(exc, QueuertError):
            raise
        raise ConfigurationError(f"invalid adapter URL {redact_url(url)!r}: {clip(clean)}") from exc
    return result


def _find(group: str, scheme: str) -> EntryPoint | None:
    for entry in entry_points(group=group):
        if entry.name.lower() == scheme:
            return entry
    return None


def _missing_message(group: str, scheme: str, url: str) -> str:
    kind = "state" if group == STATE_GROUP else "notify"
    shown = redact_url(url)
    installed = ", ".join(installed_schemes(group)) or "none"
    own = _STATE_DISTRIBUTIONS if group == STATE_GROUP else _NOTIFY_DISTRIBUTIONS
    other = _NOTIFY_DISTRIBUTIONS if group == STATE_GROUP else _STATE_DISTRIBUTIONS
    dist = own.get(scheme)
    if dist is not None:
        if _is_installed(dist):
            return (
                f"no {kind} adapter for scheme {scheme!r} in {shown!r}: distribution {dist!r} "
                f"is installed but provides no {group!r} entry point named {scheme!r} "
                f"(reinstall it if it was just updated); installed {kind} schemes: {installed}"
            )
        return (
            f"no {kind} adapter is installed for scheme {scheme!r} in {shown!r}: "
            f"install the {dist!r} distribution (pip install {dist}); "
            f"installed {kind} schemes: {installed}"
        )
    if scheme in other:
        return (
            f"scheme {scheme!r} in {shown!r} has no {kind} adapter (it selects a "
            f"{'notify' if kind == 'state' else 'state'} adapter); "
            f"installed {kind} schemes: {installed}"
        )
    return (
        f"unknown {kind} adapter scheme {scheme!r} in {shown!r}; "
        f"installed {kind} schemes: {installed}"
    )


def _is_installed(dist: str) -> bool:
    try:
        distribution(dist)
    except PackageNotFoundError:
        return False
    return True
