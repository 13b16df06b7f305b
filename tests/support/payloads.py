"""Checking a JSON-like value against a declared type (a TypedDict, unions, containers)."""

from __future__ import annotations

import types
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict


def conforms(value: Any, hint: Any) -> bool:
    """Whether ``value`` is of type ``hint`` (a bool is not an int here)."""
    if hint is Any:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(conforms(value, option) for option in get_args(hint))
    if is_typeddict(hint):
        return isinstance(value, dict) and not mismatches(value, hint)
    if origin is dict:
        key, item = get_args(hint)
        return isinstance(value, dict) and all(
            conforms(k, key) and conforms(v, item) for k, v in value.items()
        )
    if origin is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(conforms(v, item) for v in value)
    if origin is not None:  # Literal
        return value in get_args(hint)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def mismatches(payload: dict[str, Any], kind: Any) -> list[str]:
    """What is wrong with ``payload`` as a ``kind`` (a TypedDict): keys missing, keys
    extra, values of another type. Empty if nothing."""
    hints = get_type_hints(kind)
    keys = set(payload)
    wrong = [f"missing {k}" for k in sorted(kind.__required_keys__ - keys)]
    wrong += [f"extra {k}" for k in sorted(keys - set(hints))]
    wrong += [
        f"{k}={payload[k]!r} is not {hints[k]}"
        for k in sorted(keys & set(hints))
        if not conforms(payload[k], hints[k])
    ]
    return wrong
