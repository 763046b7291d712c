"""The project's own table, written in the same transaction as the chains."""

from __future__ import annotations

from django.db import models


class Image(models.Model):
    name: models.CharField[str, str] = models.CharField(max_length=200)
    processed: models.BooleanField[bool, bool] = models.BooleanField(default=False)

    class Meta:
        app_label = "shop"
