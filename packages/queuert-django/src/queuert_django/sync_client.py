"""The synchronous client (:class:`queuert.sync.SyncClient`) the calls of
:mod:`queuert_django.calls` go through: one per process and configuration, built
at first use from the settings, its signals sent by ``transaction.on_commit``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.core.signals import setting_changed
from django.db import transaction

from queuert.sync import SyncClient
from queuert_django import database, registry
from queuert_django.conf import config

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], SyncClient] = {}


def client() -> tuple[SyncClient, str]:
    """The client for the current settings and the alias of the queuert database.
    Raises ConfigurationError for a bad setting."""
    cfg = config()
    chains = registry.project_chains()
    state = database.state_url(cfg=cfg)
    notify = database.notify_url(cfg)
    key = (cfg, state, notify, tuple(id(chain) for chain in chains))
    with _lock:
        found = _clients.get(key)
        if found is None:
            alias = cfg.database

            def on_commit(send: Callable[[], None]) -> None:
                transaction.on_commit(send, using=alias, robust=True)

            # Built from the workers' URLs, connected to nothing: the calls run on
            # Django's connection.
            found = SyncClient.from_url(
                chains=chains, state=state, notify=notify or "none", on_commit=on_commit
            )
            _clients[key] = found
        return found, cfg.database


def reset() -> None:
    """Forget the clients (closing their publishers): the next call builds anew."""
    with _lock:
        clients = list(_clients.values())
        _clients.clear()
    for old in clients:
        old.close()


def _on_setting_changed(*, setting: str, **_: Any) -> None:
    if setting in ("QUEUERT", "DATABASES", "TASKS"):
        reset()


setting_changed.connect(_on_setting_changed)
