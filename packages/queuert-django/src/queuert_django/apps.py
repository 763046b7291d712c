"""The Django application of queuert: add ``"queuert_django"`` to INSTALLED_APPS."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class QueuertConfig(AppConfig):
    name = "queuert_django"
    label = "queuert_django"
    verbose_name = "queuert"

    def ready(self) -> None:
        from queuert_django.checks import check_settings

        checks.register(check_settings, "queuert")
