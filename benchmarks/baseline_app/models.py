"""The plaintext row of the persisted baseline chat (benchmark database only)."""

from __future__ import annotations

from typing import ClassVar

from django.db import models


class PlainMessage(models.Model):
    room = models.CharField(max_length=64)
    text = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    # The app is not in INSTALLED_APPS, so the manager is declared for the type checker.
    objects: ClassVar[models.Manager[PlainMessage]] = models.Manager()

    class Meta:
        app_label = "baseline_app"
        db_table = "benchmark_plain_message"

    def __str__(self) -> str:
        return f"{self.room}#{self.pk}"
