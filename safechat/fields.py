"""Serializer fields every API input uses.

A lower module (DRF only), so any app's API may import it.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class StrictCharField(serializers.CharField):
    """A string exactly as sent: a JSON number, boolean, list or object is refused
    (400, code ``invalid``), never coerced to its text as DRF's ``CharField`` does.

    Every string field of an API input is one of these (a test walks the API's input
    serializers), so ``{"name": 123}`` is an error, not a room named "123".
    """

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


__all__ = ["StrictCharField"]
