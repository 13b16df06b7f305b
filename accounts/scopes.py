"""API token scopes. No Django imports.

``read`` < ``write`` < ``admin`` are ordered: admin covers write, write covers read.
``audit`` stands apart: read-only, it reaches the views that ask for it (the audit
export) and nothing else, not even the chat's reads; ``admin`` covers it too, so an
admin token may mint an audit token, and an audit token mints nothing (that needs admin).
``scim`` stands apart entirely: it reaches the SCIM provisioning endpoints (``/scim/v2/``)
and nothing else, and no other scope reaches them, not even ``admin``: the identity
provider's credential is not an integration's, and an integration's is not the provider's.
"""

from __future__ import annotations

READ = "read"
WRITE = "write"
ADMIN = "admin"
AUDIT = "audit"
SCIM = "scim"
SCOPE_ORDER = {READ: 0, WRITE: 1, ADMIN: 2}
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def scope_covers(granted: str, needed: str) -> bool:
    """Whether a token of scope ``granted`` may do what needs ``needed``.

    >>> scope_covers("write", "read"), scope_covers("read", "write")
    (True, False)
    >>> scope_covers("audit", "audit"), scope_covers("admin", "audit")
    (True, True)
    >>> scope_covers("audit", "read"), scope_covers("write", "audit")
    (False, False)
    >>> scope_covers("scim", "scim"), scope_covers("admin", "scim"), scope_covers("scim", "read")
    (True, False, False)
    """
    if needed == SCIM or granted == SCIM:
        return granted == needed
    if needed == AUDIT:
        return granted in (AUDIT, ADMIN)
    if granted == AUDIT:
        return False
    return SCOPE_ORDER.get(granted, -1) >= SCOPE_ORDER[needed]


def scope_allows(granted: str, needed: str, method: str) -> bool:
    """Whether a token of scope ``granted`` may call ``method`` on a view that needs
    ``needed``: :func:`scope_covers`, and an audit token only ever reads.

    >>> scope_allows("audit", "audit", "GET"), scope_allows("audit", "audit", "POST")
    (True, False)
    """
    if granted == AUDIT and method.upper() not in SAFE_METHODS:
        return False
    return scope_covers(granted, needed)


def scope_for_method(method: str) -> str:
    return READ if method.upper() in SAFE_METHODS else WRITE
