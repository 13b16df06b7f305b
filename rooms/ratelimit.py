"""Per-user limits on every write a person makes in rooms, through the one limiter.

Posts, edits and deletions share one budget (``SAFECHAT_POST_RATE_LIMIT``): each is a
stored change, an audit event and a broadcast. Reactions and read markers have their
own. So do the heavier writes on rooms: creating a room or a direct conversation (a
key epoch sealed to everyone in it), changing who is in a room or their role (a
removal starts a new epoch), and changing or archiving a room. Services check before
taking any lock, so the portal, the API and the socket are all limited alike and no
Redis wait ever holds a room lock.
"""

from __future__ import annotations

from enum import StrEnum

from django.conf import settings

from rooms.errors import RateLimitedError
from safechat.ratelimit import Rate, rate_hit


class Write(StrEnum):
    POST = "post"
    EDIT = "edit"
    DELETE = "delete"
    REACT = "react"
    READ_MARKER = "read-marker"
    ROOM_CREATE = "room-create"  # channels and direct conversations
    MEMBERSHIP = "membership"  # add, remove, role change, invitation, joining a listed room
    ROOM_SETTINGS = "room-settings"  # settings, archive, and a member's own mute
    UPLOAD = "upload"  # a file upload begun (counted with posts)


def _budget(write: Write) -> tuple[str, Rate]:
    if write in (Write.POST, Write.EDIT, Write.DELETE, Write.UPLOAD):
        return "message", Rate.of(settings.SAFECHAT_POST_RATE_LIMIT)
    setting = {
        Write.REACT: ("reaction", settings.SAFECHAT_REACTION_RATE_LIMIT),
        Write.READ_MARKER: ("read-marker", settings.SAFECHAT_READ_MARKER_RATE_LIMIT),
        Write.ROOM_CREATE: ("room-create", settings.SAFECHAT_ROOM_CREATE_RATE_LIMIT),
        Write.MEMBERSHIP: ("membership", settings.SAFECHAT_MEMBERSHIP_RATE_LIMIT),
        Write.ROOM_SETTINGS: ("room-settings", settings.SAFECHAT_ROOM_SETTINGS_RATE_LIMIT),
    }[write]
    return setting[0], Rate.of(setting[1])


def write_rate_check(*, user_id: int, write: Write) -> None:
    """Count one ``write`` by ``user_id``; raise RateLimitedError past its budget."""
    budget, rate = _budget(write)
    retry_after = rate_hit(rate, "rooms", budget, str(user_id), policy=budget)
    if retry_after is not None:
        raise RateLimitedError(retry_after=retry_after)
