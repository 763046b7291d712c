"""Settings of the Django project the tests of queuert_django run.

The database comes from the environment, so each test module gets its own:
``QUEUERT_TEST_DJANGO_DB`` is ``sqlite:/path/to/file.db`` or ``postgresql:<name>``
(a database on the test server at 127.0.0.1:5432)."""

from __future__ import annotations

import os
from typing import Any

_kind, _, _name = os.environ.get("QUEUERT_TEST_DJANGO_DB", "sqlite:django-test.db").partition(":")

SECRET_KEY = "tests-only"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --8<-- [start:settings]
INSTALLED_APPS = [
    "queuert_django",  # queuert's tables, by `manage.py migrate`; `manage.py queuert`
    "tests.django.project.shop",
]

QUEUERT = {
    "DATABASE": "default",  # the DATABASES alias that holds queuert's tables
    "CHAINS": "tests.django.project.shop.jobs:chains",  # the chains the project starts
    "WORKER": "tests.django.project.shop.jobs:worker",  # what `manage.py queuert worker` runs
}

TASKS = {"default": {"BACKEND": "queuert_django.tasks.QueuertBackend"}}
# --8<-- [end:settings]

if os.environ.get("QUEUERT_TEST_DJANGO_SETTING") == "broken":
    QUEUERT["DATABASE"] = "jobs"  # not in DATABASES: for the test of the system check

DATABASES: dict[str, Any]
if _kind == "postgresql":
    # --8<-- [start:postgres]
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",  # on psycopg 3
            "NAME": _name,
            "USER": "postgres",
            "HOST": "127.0.0.1",
            "PORT": "5432",
        }
    }
    QUEUERT["NOTIFY"] = "database"  # LISTEN/NOTIFY on the same database
    # --8<-- [end:postgres]
    # A password and another port, for the tests of error messages.
    DATABASES["default"]["PASSWORD"] = os.environ.get("QUEUERT_TEST_DJANGO_PASSWORD", "")
    DATABASES["default"]["PORT"] = os.environ.get("QUEUERT_TEST_DJANGO_PORT", "5432")
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": _name}}
    # The tests wake the SQLite project's workers through a notifier on PostgreSQL: its
    # signals leave through transaction.on_commit (the SQLite writes cannot carry them).
    QUEUERT["NOTIFY"] = os.environ.get("QUEUERT_TEST_DJANGO_NOTIFY", "")
