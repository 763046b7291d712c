"""The Django application of queuert: add ``"queuert_django"`` to INSTALLED_APPS."""

from __future__ import annotations

from django.apps import AppConfig


class QueuertConfig(AppConfig):
    name = "queuert_django"
    label = "queuert_django"
    verbose_name = "queuert"
