"""JSON a client sends: one rule for every edge (the API's bodies, the socket's frames).

A JSON object may name each member once. RFC 8259 (section 4) says names SHOULD be
unique and leaves the meaning of a repeated one open: parsers keep the first, the last,
or fail, so a proxy, a signature or a log that read one value could stand beside a
write made from another. SafeChat refuses such a document rather than guess. A lower
module: the standard library only.
"""

from __future__ import annotations

import json
import re
from typing import Any

# A surrogate code point in a decoded JSON string: ``json`` joins a valid escaped pair
# into one character, so any left is lone (``"\\ud800"``), which no UTF-8 text can carry.
_SURROGATE = re.compile("[\ud800-\udfff]")


class DuplicateName(ValueError):
    """A JSON object names one member twice; ``name`` is that name, as JSON."""

    def __init__(self, name: str) -> None:
        # As JSON, escaped to ASCII if it holds a lone surrogate: quotable in any answer.
        self.name = json.dumps(name, ensure_ascii=bool(_SURROGATE.search(name)))
        super().__init__(f"the object names {self.name} twice")


def object_of_unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object as a dict, for ``json.loads(object_pairs_hook=...)``; raises
    :class:`DuplicateName` (a ``ValueError``) if it names a member twice."""
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise DuplicateName(name)
            seen.add(name)
    return found


def lone_surrogate(value: Any) -> tuple[tuple[str, ...], str, bool] | None:
    """The first lone surrogate in a decoded JSON document, or None: the path to the
    string holding it (object member names and list indexes, as text), the code point
    (``"U+D800"``), and whether it is in a member's name (then the path is the object's).

    RFC 8259 (section 8.2) leaves such strings' meaning unpredictable and I-JSON (RFC
    7493, section 2.1) forbids them: they cannot be written as UTF-8, so one cannot be
    stored, logged or quoted back in an answer."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return path, f"U+{ord(found.group()):04X}", False
        elif isinstance(item, dict):
            for name in item:
                found = _SURROGATE.search(name)
                if found:
                    return path, f"U+{ord(found.group()):04X}", True
            stack.extend(((*path, name), member) for name, member in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(((*path, str(i)), member) for i, member in reversed(list(enumerate(item))))
    return None


def loads(text: str | bytes) -> Any:
    """``json.loads`` with :func:`object_of_unique_names`: raises ``ValueError`` for text
    that is not JSON (:class:`DuplicateName` for a name given twice) and
    ``RecursionError`` for nesting past the interpreter's depth."""
    return json.loads(text, object_pairs_hook=object_of_unique_names)


__all__ = ["DuplicateName", "loads", "lone_surrogate", "object_of_unique_names"]
