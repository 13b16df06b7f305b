"""API token scopes, ordered: admin covers write, write covers read. No Django imports."""

from __future__ import annotations

READ = "read"
WRITE = "write"
ADMIN = "admin"
SCOPE_ORDER = {READ: 0, WRITE: 1, ADMIN: 2}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def scope_covers(granted: str, needed: str) -> bool:
    """>>> scope_covers("write", "read"), scope_covers("read", "write")
    (True, False)
    """
    return SCOPE_ORDER.get(granted, -1) >= SCOPE_ORDER[needed]


def scope_for_method(method: str) -> str:
    return READ if method.upper() in SAFE_METHODS else WRITE
