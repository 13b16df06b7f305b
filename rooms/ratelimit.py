"""Per-user limits on every write a person makes in rooms, through the one limiter.

Posts, edits and deletions share one budget (``SAFECHAT_POST_RATE_LIMIT``): each is a
stored change, an audit event and a broadcast. Reactions and read markers have their
own. Services check before taking any lock, so the portal, the API and the socket
are all limited alike and no Redis wait ever holds a room lock.
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
    # Uploads will count here too.


def _budget(write: Write) -> tuple[str, Rate]:
    if write in (Write.POST, Write.EDIT, Write.DELETE):
        return "message", Rate.of(settings.SAFECHAT_POST_RATE_LIMIT)
    if write is Write.REACT:
        return "reaction", Rate.of(settings.SAFECHAT_REACTION_RATE_LIMIT)
    return "read-marker", Rate.of(settings.SAFECHAT_READ_MARKER_RATE_LIMIT)


def write_rate_check(*, user_id: int, write: Write) -> None:
    """Count one ``write`` by ``user_id``; raise RateLimitedError past its budget."""
    budget, rate = _budget(write)
    retry_after = rate_hit(rate, "rooms", budget, str(user_id))
    if retry_after is not None:
        raise RateLimitedError(retry_after=retry_after)
