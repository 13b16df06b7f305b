"""What every API input uses: a body of only the fields it documents
(:class:`InputSerializer`), each value taken exactly as sent, of the JSON type the schema
documents, or refused.

A lower module (Django and DRF only), so any app's API may import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.http import HttpRequest
from django.http.request import RawPostDataException
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request

# The header that makes a post idempotent; its refusals name it as their ``parameter``.
IDEMPOTENCY_KEY = "Idempotency-Key"


class HeaderRefused(ValidationError):
    """A request header the API refuses (400 ``invalid``): its error names the header as
    the ``parameter`` refused (OpenAPI's header parameters), with its own ``code``."""

    def __init__(self, *, header: str, detail: str, code: str = "invalid") -> None:
        super().__init__(detail, code=code)
        self.header = header
        self.error = {"parameter": header, "code": code, "detail": detail}


class InputSerializer(serializers.Serializer[dict[str, Any]]):
    """The base of every API request body: a member it has no field for is refused.

    DRF ignores a member no field names, so a typo (``{"nmae": "Desk"}``) would be a 200
    that did something else than asked. Here each such member is a field error of its
    own (400 ``invalid``; in the problem's ``errors``, a ``pointer`` to the member, code
    ``unknown``, the detail naming the fields taken), beside any other field's errors.
    The schema says the same: ``additionalProperties: false`` on every request body
    (``safechat.api.InputSerializerSchema``).
    """

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        unknown = self._unknown_members(data)
        try:
            value: dict[str, Any] = super().to_internal_value(data)
        except ValidationError as exc:
            if unknown and isinstance(exc.detail, dict):
                raise ValidationError({**exc.detail, **unknown}) from None
            raise
        if unknown:
            raise ValidationError(unknown)
        return value

    def _unknown_members(self, data: Any) -> dict[str, list[ErrorDetail]]:
        if not isinstance(data, Mapping):
            return {}  # refused as a whole by DRF (not an object)
        taken = [name for name, field in self.fields.items() if not field.read_only]
        message = (
            "Not a field of this request; it takes: " + ", ".join(taken) + "."
            if taken
            else "Not a field of this request; it takes no body."
        )
        return {
            str(name): [ErrorDetail(message, code="unknown")] for name in data if name not in taken
        }


class NoInput(InputSerializer):
    """The body of a write that takes none (a join, an archive, a deletion): absent, or
    an empty JSON object; any member is refused as :class:`InputSerializer` refuses it."""


NO_BODY = "This request takes no body; send none, or {} as JSON."


def no_body_check(request: Request) -> None:
    """For a write that takes no body: the body must be empty (of any type: Django's test
    client and some HTTP libraries send an empty multipart or form body), or an empty JSON
    object. A JSON object with members raises the ``ValidationError`` of :class:`NoInput`
    (400, each member named, code ``unknown``); any other body (``text/plain`` "hello", a
    form with a field, a JSON array) raises a ``ValidationError`` for the body as a whole
    (400, pointer ``#``, code ``no_body``, detail ``NO_BODY``): never ignored."""
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type == "application/json":
        data = request.data
        if isinstance(data, Mapping):
            NoInput(data=data).is_valid(raise_exception=True)
            return
        if data in (None, ""):
            return  # no body at all (DRF reads an empty JSON body as none)
        raise ValidationError([ErrorDetail(NO_BODY, code="no_body")])
    if not _body_is_empty(request._request, media_type):
        raise ValidationError([ErrorDetail(NO_BODY, code="no_body")])


def _body_is_empty(request: HttpRequest, media_type: str) -> bool:
    """Whether ``request`` carries no content: no bytes, or a form or multipart body with
    neither a field nor a file."""
    try:
        raw = request.body
    except RawPostDataException:
        # A form body already parsed from the stream (the CSRF check reads POST first).
        return not request.POST and not request.FILES
    if not raw.strip():
        return True
    if media_type == "multipart/form-data":
        boundary = (request.content_params or {}).get("boundary", "")
        return bool(boundary) and raw.strip() == f"--{boundary}--".encode("latin1")
    return False


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
