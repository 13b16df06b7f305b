"""Live-socket side of accounts: group names and the ``session.ended`` broadcast.

Every WebSocket joins ``session.<hash of its session key>`` and ``user.<id>`` on
connect (rooms.consumers). Services call these helpers from
``transaction.on_commit``; the consumer closes with :data:`CLOSE_SESSION_ENDED`.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

# Close codes (application range 4000-4999), documented for clients in docs/accounts.md.
CLOSE_UNAUTHENTICATED = 4401  # refused at the handshake: no verified session
CLOSE_SESSION_ENDED = 4410  # the session was signed out, ended or its user deactivated

SESSION_ENDED_EVENT = "session.ended"


def session_group(key_hash: str) -> str:
    return f"session.{key_hash}"


def user_group(user_id: int) -> str:
    return f"user.{user_id}"


def _send(group: str, reason: str) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group, {"type": SESSION_ENDED_EVENT, "reason": reason})


def session_ended(*, key_hash: str, reason: str) -> None:
    """Close the live sockets of one session."""
    _send(session_group(key_hash), reason)


def user_sessions_ended(*, user_id: int, reason: str) -> None:
    """Close every live socket of a user (deactivation, factor reset, end all)."""
    _send(user_group(user_id), reason)
