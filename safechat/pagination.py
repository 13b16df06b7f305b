"""Cursor pagination, the one scheme of every list the API serves.

A list is ordered by one unique integer key (a message's id, a room's id, a member's user
id, ...), either ascending or newest first; the key is the cursor, documented as such, so
a client can also start from an id it already holds. Parameters (query string):

- ``limit``: the page size, ``LIMIT_MIN`` to the list's maximum (``LIMIT_MAX`` unless
  the list says less); out of range, or not an integer, is a 400 naming the parameter;
- ``before=K``: the ``limit`` items nearest to ``K`` with a smaller key;
- ``after=K``: the ``limit`` items nearest to ``K`` with a larger key;
- neither: the first page, from the start of the list in its own order.

A parameter the list does not take is refused (400, naming it: a typo is never ignored).
``before`` and ``after`` together are refused (400), and so is a parameter sent empty
(``?before=``: an empty value is a mistake, not an absent parameter) or more than once. A page is
always presented in the list's order, whatever the direction it was fetched in, with:

- ``has_more``: more items lie past this page in the direction it was fetched (smaller
  keys for ``before``, larger for ``after``, the list's own direction without a cursor);
- ``next_before`` / ``next_after``: the value to pass as ``before`` / ``after`` for the
  items on either side of this page, or null when there were none when it was read
  (an empty page has both null; keep your own cursor and ask again later).

Keyset pagination, not offsets: an item inserted or deleted while a client pages never
makes it skip or repeat another. A lower module: Django, DRF and drf-spectacular only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Model, QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail, ValidationError

LIMIT_MIN = 1
LIMIT_MAX = 100
LIMIT_DEFAULT = 50
# The largest key a cursor may name: the largest id the databases store (a signed 64-bit
# integer). A larger one is refused like any value out of range, never sent to the
# database, whose driver cannot bind it (a 500 before).
KEY_MAX = 2**63 - 1

M = TypeVar("M", bound=Model)
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Cursor:
    """Where a page starts: at most one of ``before`` and ``after``; ``limit`` items."""

    before: int | None = None
    after: int | None = None
    limit: int = LIMIT_DEFAULT


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, in the list's order (see the module's docstring)."""

    items: list[T]
    has_more: bool
    next_before: int | None
    next_after: int | None

    def map(self, convert: Callable[[list[T]], list[U]]) -> Page[U]:
        """The same page with its items converted (``convert`` keeps their order)."""
        return Page(convert(self.items), self.has_more, self.next_before, self.next_after)

    def as_json(self, results: Any) -> dict[str, Any]:
        """The page's JSON, ``results`` being its items as the API renders them."""
        return {
            "results": results,
            "has_more": self.has_more,
            "next_before": self.next_before,
            "next_after": self.next_after,
        }


def _refused(parameter: str, message: str, code: str = "invalid") -> ValidationError:
    return ValidationError({parameter: [ErrorDetail(message, code=code)]})


# The parameters of every cursor-paginated list.
CURSOR_PARAMETERS = ("before", "after", "limit")


def query_names_check(query: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse every query parameter that is not one of ``known``: a ``ValidationError``
    naming each (code ``unknown``), so a typo (``?befor=``) or a parameter the operation
    does not take (``before`` on the change feed) is a 400, never silently ignored (the
    answer would look right and be another one). The one check of every list the API
    serves and of the audit export, each naming the parameters its schema documents."""
    accepted = sorted(set(known))
    unknown = sorted(name for name in query if name not in accepted)
    if unknown:
        message = "Not a parameter of this operation; it takes: " + ", ".join(accepted) + "."
        raise ValidationError({name: [ErrorDetail(message, code="unknown")] for name in unknown})


def query_value(query: Mapping[str, Any], name: str) -> str | None:
    """The one value of the query parameter ``name``, None if it is absent. A parameter
    sent more than once (``?limit=2&limit=3``) is a ``ValidationError`` naming it (code
    ``repeated``): which value would count is a guess, and a proxy may guess otherwise."""
    if name not in query:
        return None
    getlist = getattr(query, "getlist", None)
    values = list(getlist(name)) if getlist is not None else [query[name]]
    if len(values) > 1:
        raise _refused(name, "Give this parameter once.", "repeated")
    return str(values[0])


def query_integer(
    query: Mapping[str, Any], name: str, *, minimum: int, maximum: int | None
) -> int | None:
    """The whole number in the query parameter ``name``, None if it is absent; a value
    that is repeated (:func:`query_value`), empty, not a whole number or out of range
    (``maximum`` None: ``KEY_MAX``) is a ``ValidationError`` naming it."""
    raw = query_value(query, name)
    if raw is None:
        return None
    if raw == "":
        raise _refused(name, "Give a value, or leave the parameter out.", "blank")
    if maximum is None:
        maximum = KEY_MAX
    if raw.startswith("-") and raw[1:].isascii() and raw[1:].isdigit():
        # A negative whole number is a number, out of the range (code out_of_range).
        raise _refused(name, f"Must be at least {minimum} and at most {maximum}.", "out_of_range")
    if not raw.isascii() or not raw.isdigit():
        raise _refused(name, "A whole number is required.")
    digits = raw.lstrip("0") or "0"
    # Past 19 digits a number is over any maximum (KEY_MAX has 19): not even parsed.
    value = int(digits) if len(digits) <= len(str(KEY_MAX)) else KEY_MAX + 1
    if value < minimum or value > maximum:
        raise _refused(name, f"Must be at least {minimum} and at most {maximum}.", "out_of_range")
    return value


def query_text(query: Mapping[str, Any], name: str, *, max_length: int) -> str:
    """The text in the query parameter ``name``, ``""`` if it is absent or empty (a search
    for everything). A value that is repeated (:func:`query_value`), holds a NUL character
    (code ``null_characters_not_allowed``, as a string in a body is refused: no stored
    text holds one, and PostgreSQL cannot compare text with one) or is longer than
    ``max_length`` characters (``max_length``) is a ``ValidationError`` naming it."""
    raw = query_value(query, name) or ""
    if "\x00" in raw:
        raise _refused(name, "Null characters are not allowed.", "null_characters_not_allowed")
    if len(raw) > max_length:
        raise _refused(name, f"At most {max_length} characters.", "max_length")
    return raw


def cursor_from_query(
    query: Mapping[str, Any],
    *,
    default_limit: int = LIMIT_DEFAULT,
    max_limit: int = LIMIT_MAX,
    also: Iterable[str] = (),
) -> Cursor:
    """The cursor a request's query string asks for; ``also`` names the list's other
    parameters (``q``), which its caller reads.

    Raises DRF's ``ValidationError`` naming the parameter (answered 400, with
    ``parameter`` in the problem's ``errors``): a parameter that is neither a cursor's nor
    in ``also`` (:func:`query_names_check`), a value that is empty, not a whole number,
    or out of range (keys from 0, ``limit`` from ``LIMIT_MIN`` to ``max_limit``), and
    ``before`` with ``after``.
    """
    query_names_check(query, (*CURSOR_PARAMETERS, *also))
    before = query_integer(query, "before", minimum=1, maximum=None)
    after = query_integer(query, "after", minimum=0, maximum=None)
    limit = query_integer(query, "limit", minimum=LIMIT_MIN, maximum=max_limit)
    if before is not None and after is not None:
        raise _refused("after", "Use either before or after, not both.", "exclusive")
    return Cursor(before=before, after=after, limit=default_limit if limit is None else limit)


def page_of(
    queryset: QuerySet[M], *, cursor: Cursor, key: str = "pk", newest_first: bool = False
) -> Page[M]:
    """The page of ``queryset`` that ``cursor`` names, keyed on the unique integer field
    ``key`` (an attribute of each row of the same name); two or three queries, each on
    an index of ``key`` where the table has one."""
    if cursor.after is not None:
        upward, rows = True, queryset.filter(**{f"{key}__gt": cursor.after})
    elif cursor.before is not None:
        upward, rows = False, queryset.filter(**{f"{key}__lt": cursor.before})
    else:
        upward, rows = not newest_first, queryset
    fetched = list(rows.order_by(key if upward else f"-{key}")[: cursor.limit + 1])
    has_more = len(fetched) > cursor.limit
    items = fetched[: cursor.limit]
    if not items:
        return Page([], False, None, None)
    first, last = _key_of(items[0], key), _key_of(items[-1], key)
    # ``last`` is the far end in the direction fetched; the near end borders the cursor.
    if upward:
        beyond_near = queryset.filter(**{f"{key}__lt": first}).exists()
        next_before, next_after = (first if beyond_near else None), (last if has_more else None)
    else:
        beyond_near = queryset.filter(**{f"{key}__gt": first}).exists()
        next_before, next_after = (last if has_more else None), (first if beyond_near else None)
    if upward == newest_first:
        items.reverse()
    return Page(items, has_more, next_before, next_after)


def _key_of(row: Model, key: str) -> int:
    return int(getattr(row, "pk" if key == "pk" else key))


# --- the schema -------------------------------------------------------------------


def cursor_parameters(*, max_limit: int = LIMIT_MAX, key: str = "id") -> type[Any]:
    """The query parameters of a paginated list keyed on ``key``, for drf-spectacular's
    ``parameters=`` (a serializer, so the schema carries their minimum and maximum)."""
    fields: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": None,
        "before": serializers.IntegerField(
            required=False,
            min_value=1,
            max_value=KEY_MAX,
            help_text=f"Only items with a smaller {key} than this; not with `after`; never empty.",
        ),
        "after": serializers.IntegerField(
            required=False,
            min_value=0,
            max_value=KEY_MAX,
            help_text=f"Only items with a larger {key} than this; not with `before`; never empty.",
        ),
        "limit": serializers.IntegerField(
            required=False,
            min_value=LIMIT_MIN,
            max_value=max_limit,
            default=min(LIMIT_DEFAULT, max_limit),
            help_text=f"Page size, {LIMIT_MIN} to {max_limit}.",
        ),
    }
    return type(f"CursorQuery{max_limit}", (serializers.Serializer,), fields)


def search_parameter(*, max_length: int, help_text: str) -> OpenApiParameter:
    """The query parameter ``q`` of a searchable list, for drf-spectacular's
    ``parameters=``: its ``pattern`` states both rules :func:`query_text` applies (at most
    ``max_length`` characters, none of them NUL)."""
    return OpenApiParameter(
        "q",
        str,
        pattern=f"^[^\\x00]{{0,{max_length}}}$",
        description=f"{help_text} At most {max_length} characters, no NUL.",
    )


def page_serializer(name: str, item: Any) -> type[serializers.Serializer[Any]]:
    """The documented shape of a page of ``item`` (a serializer instance with many=True)."""
    attrs: dict[str, Any] = {
        "__module__": __name__,
        "__doc__": None,
        "results": item,
        "has_more": serializers.BooleanField(
            help_text="More items lie past this page in the direction it was fetched."
        ),
        "next_before": serializers.IntegerField(
            allow_null=True, help_text="Pass as `before` for the items before this page."
        ),
        "next_after": serializers.IntegerField(
            allow_null=True, help_text="Pass as `after` for the items after this page."
        ),
    }
    return type(name, (serializers.Serializer,), attrs)


__all__ = [
    "CURSOR_PARAMETERS",
    "KEY_MAX",
    "LIMIT_DEFAULT",
    "LIMIT_MAX",
    "LIMIT_MIN",
    "Cursor",
    "Page",
    "cursor_from_query",
    "cursor_parameters",
    "page_of",
    "page_serializer",
    "query_integer",
    "query_names_check",
    "query_text",
    "query_value",
    "search_parameter",
]
