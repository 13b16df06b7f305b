"""Live-socket side of accounts: the user group and the ``access.changed`` hint.

Every WebSocket joins ``user.<id>``: a name that never changes, unlike a session key,
which rotates at verification and at a password change. When anything a socket's right
to live depends on changes (a session ended, a password changed or reset, factors
reset, the user deactivated), the service sends ``access.changed`` there after commit.
It is only a hint to check now: each socket re-derives its verdict from the database
(``accounts.session_policy``) and closes with :data:`CLOSE_SESSION_ENDED` if refused,
so a lost or late hint delays a close by at most the socket's re-check interval, and a
socket whose own session is still good stays open.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

# Close codes (application range 4000-4999), documented for clients in docs/realtime.md.
CLOSE_UNAUTHENTICATED = 4401  # refused at the handshake: no live, verified session
CLOSE_SESSION_ENDED = 4410  # the session ended, expired, or its user lost access
CLOSE_TRY_AGAIN = 1013  # RFC 6455 "Try Again Later": the realtime backend is unavailable

ACCESS_CHANGED_EVENT = "access.changed"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def access_changed(*, user_id: int, reason: str) -> None:
    """Ask every live socket of ``user_id`` to re-check its session now (after commit).

    Best effort by design: a channel layer that is down loses the hint, and the
    sockets' own timers close them within ``SAFECHAT_SOCKET_RECHECK_SECONDS``.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(
            user_group(user_id), {"type": ACCESS_CHANGED_EVENT, "reason": reason}
        )
    except Exception:  # the layer (Redis) is down: the sockets' timers still close them
        logger.warning("access.changed for user %s not delivered", user_id, exc_info=True)
