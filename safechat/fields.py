"""Serializer fields every API input uses: a value is taken exactly as sent, of the JSON
type the schema documents, or refused.

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


class StrictIntegerField(serializers.IntegerField):
    """A JSON whole number exactly as sent: a string (``"5"``), a fraction (``5.0``) or a
    boolean is refused (400, code ``invalid``), never converted as DRF's ``IntegerField``
    does. For bodies: a query string's values are text, read by
    ``safechat.pagination.query_integer``."""

    # The largest id a database column holds (a signed 64-bit integer): a bigger number
    # is refused here (400), never passed to a driver that fails on it.
    LARGEST = 2**63 - 1

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_value", self.LARGEST)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return int(super().to_internal_value(data))


class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false`` exactly as sent: ``0``, ``1``, ``"true"``, ``"yes"``
    and the like are refused (400, code ``invalid``), never read as a boolean."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


__all__ = ["StrictBooleanField", "StrictCharField", "StrictIntegerField"]
