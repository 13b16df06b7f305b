"""JSON a client sends: one rule for every edge (the API's bodies, the socket's frames).

A JSON object may name each member once. RFC 8259 (section 4) says names SHOULD be
unique and leaves the meaning of a repeated one open: parsers keep the first, the last,
or fail, so a proxy, a signature or a log that read one value could stand beside a
write made from another. SafeChat refuses such a document rather than guess. A lower
module: the standard library only.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateName(ValueError):
    """A JSON object names one member twice; ``name`` is that name, as JSON."""

    def __init__(self, name: str) -> None:
        self.name = json.dumps(name, ensure_ascii=False)
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


def loads(text: str | bytes) -> Any:
    """``json.loads`` with :func:`object_of_unique_names`: raises ``ValueError`` for text
    that is not JSON (:class:`DuplicateName` for a name given twice) and
    ``RecursionError`` for nesting past the interpreter's depth."""
    return json.loads(text, object_pairs_hook=object_of_unique_names)


__all__ = ["DuplicateName", "loads", "object_of_unique_names"]
