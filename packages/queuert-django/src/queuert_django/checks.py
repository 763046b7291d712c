"""System checks (``manage.py check``, run before ``migrate`` and ``runserver``): a
bad ``QUEUERT`` setting, a database queuert cannot run on, or chains that cannot be
imported are reported before the first chain is started."""

from __future__ import annotations

from typing import Any

from django.core import checks

from queuert.errors import ConfigurationError, ValidationError
from queuert_django import database, registry
from queuert_django.conf import config


def check_settings(**_: Any) -> list[checks.CheckMessage]:
    """``queuert_django.E001`` for the first problem of the ``QUEUERT`` setting, the
    queuert database, or ``QUEUERT["CHAINS"]``."""
    try:
        cfg = config()
        database.state_url(cfg=cfg)
        database.notify_url(cfg)
        registry.project_chains()
    except (ConfigurationError, ValidationError) as exc:
        return [checks.Error(str(exc), id="queuert_django.E001")]
    return []
