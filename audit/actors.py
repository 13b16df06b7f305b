"""Who did it and to what: the value types ``audit_record`` accepts."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SYSTEM_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,62}$")
_TARGET_TYPE = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")
TARGET_ID_MAX_LENGTH = 128


@dataclass(frozen=True)
class SystemActor:
    """A named job or operator tool, snapshotted as ``system:<name>``.

    Names are lower case (``retention``, ``key-rotation``); ``:`` cannot occur in a
    Django username, so a system actor never looks like a person.
    """

    name: str

    def __post_init__(self) -> None:
        if not _SYSTEM_NAME.match(self.name):
            raise ValueError(f"invalid system actor name {self.name!r}")

    @property
    def username(self) -> str:
        return f"system:{self.name}"


@dataclass(frozen=True)
class AuditTarget:
    """An explicit target, for things that are not model instances (``type``, ``id``)."""

    type: str
    id: str

    def __post_init__(self) -> None:
        if not _TARGET_TYPE.match(self.type):
            raise ValueError(f"invalid audit target type {self.type!r}")
        if not isinstance(self.id, str) or not self.id or len(self.id) > TARGET_ID_MAX_LENGTH:
            raise ValueError(
                f"audit target id must be a non-empty string of at most "
                f"{TARGET_ID_MAX_LENGTH} characters"
            )


SYSTEM_AUDIT = SystemActor("audit")
SYSTEM_RETENTION = SystemActor("retention")
SYSTEM_CLI = SystemActor("cli")
