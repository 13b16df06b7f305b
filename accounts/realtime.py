"""Live-socket side of accounts: the close codes a socket ends with.

Every WebSocket joins ``user.<id>`` (``safechat.events.user_group``): a name that never
changes, unlike a session key, which rotates at verification and at a password change.
When anything a socket's right to live depends on changes (a session ended, a password
changed or reset, factors reset, the user deactivated), the service publishes
``access.changed`` there (``safechat.events.Event.ACCESS_CHANGED``, after commit). It
is only a hint to check now: each socket re-derives its verdict from the database
(``accounts.session_policy``) and closes with :data:`CLOSE_SESSION_ENDED` if refused,
so a lost or late hint delays a close by at most the socket's re-check interval, and a
socket whose own session is still good stays open.
"""

from __future__ import annotations

# Close codes (application range 4000-4999), documented for clients in docs/realtime.md.
CLOSE_UNAUTHENTICATED = 4401  # refused at the handshake: no live, verified session
CLOSE_SESSION_ENDED = 4410  # the session ended, expired, or its user lost access
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "Try Again Later": the realtime backend is unavailable
