"""Refusals specific to rooms; each maps to a clear 4xx or an error frame."""

from __future__ import annotations

from typing import Self

from django.core.exceptions import ValidationError

from safechat.actions import Refused


class BarrierViolationError(Refused):
    """An information barrier forbids these people sharing a room (recorded as
    ``barrier.refused`` by the action that raised it)."""


class RateLimitedError(Exception):
    """The user wrote faster than their budget allows (rooms/ratelimit.py)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many changes; try again in {retry_after} s")
        self.retry_after = retry_after


class ClientKeyRefusedError(ValidationError):
    """A post's idempotency key (socket ``client_id``, API ``Idempotency-Key``) refused;
    nothing is stored. ``code`` says why: ``invalid`` (not 1-64 visible ASCII characters
    but the comma; empty included), ``other_room`` (the key was used for a message in
    another room), ``reused`` (``IdempotencyKeyReusedError``). The API answers each as a
    problem whose error names the ``parameter`` ``Idempotency-Key`` with that code; the
    socket as an ``invalid`` error frame."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, code=code)


class ClientKeyInvalidError(ClientKeyRefusedError):
    """The key is not 1-64 visible ASCII characters other than the comma."""

    def __init__(self) -> None:
        super().__init__(
            "an idempotency key is 1-64 visible ASCII characters, none of them a comma",
            code="invalid",
        )


class ClientKeyOtherRoomError(ClientKeyRefusedError):
    """The key was used recently for a message in another room (keys are per sender)."""

    def __init__(self) -> None:
        super().__init__(
            "this idempotency key was used for a message in another room", code="other_room"
        )


class IdempotencyKeyReusedError(ClientKeyRefusedError):
    """A post repeated a recent idempotency key with a different text or parent.

    Answering the original would tell the client its new message was stored when it
    was not; the API answers 422, the socket an ``invalid`` error frame.
    """

    def __init__(self) -> None:
        super().__init__(
            "this idempotency key was already used for a different message; "
            "use a new key for a new message",
            code="reused",
        )


class NotAMemberError(ValidationError):
    """A change to a membership that does not exist (the person is not in the room, or
    the id names nobody): the API answers 404, as for any path naming nothing; the
    portal and the socket show it as the invalid request it is."""

    def __init__(self) -> None:
        super().__init__("this person is not a member of the room")


class AlreadyMemberError(ValidationError):
    """Adding someone who is a member already, under another role: nothing is written;
    the API answers 409 (the role changes through the member's own resource), the portal
    shows it as the invalid request it is."""

    def __init__(self, role: str) -> None:
        super().__init__(
            f"this person is a member of the room already, as {role}: change their role instead"
        )


UNREACHABLE = "one of these people cannot be reached"
# What adding or inviting someone who cannot be added answers: nobody by that id, an
# inactive person, a compliance officer, someone a barrier keeps out (the same words).
NOT_ADDABLE = "this person cannot be added"


class _AnsweredAs(Refused):
    """A refusal recorded as what it is but answered with other words (``ANSWER``)."""

    ANSWER = ""

    @classmethod
    def instead_of(cls, refused: Refused, *, message: str | None = None) -> Self:
        """The same refusal (action, reason, details), answered as ``message`` (default:
        the class's ``ANSWER``)."""
        return cls(
            message if message is not None else cls.ANSWER,
            actor=refused.actor,
            action=refused.action,
            target=refused.target,
            reason=refused.reason,
            extra=refused.extra,
            request=refused.request,
        )


class UnreachableError(_AnsweredAs):
    """Someone asked to share a direct conversation, or to be added or invited to a
    room, may not: a compliance officer (read-only on chat) or a person an information
    barrier separates from another participant or member.

    Recorded as the refusal it stands for (``room.access.denied`` with reason
    ``read-only role``, or ``barrier.refused``), but answered exactly as an id that
    names nobody or an inactive person is (400, with that answer's words: ``UNREACHABLE``
    for a direct conversation, ``NOT_ADDABLE`` for a member): the answer tells nobody
    who holds which role or stands behind which barrier.
    """

    ANSWER = UNREACHABLE


NO_SUCH_ROOM = "no such room"


class RoomHiddenError(_AnsweredAs):
    """Someone asked to join a room they may not know of: a private room or a direct
    conversation, a listed room an information barrier keeps from them, or any room
    while they are read-only on chat (a compliance officer).

    Recorded as the refusal it stands for (``room.access.denied`` with its reason, or
    ``barrier.refused``), but answered exactly as an id that names no room is (404,
    ``NO_SUCH_ROOM``): the answer tells nobody that a room exists, nor who holds which
    role or stands behind which barrier.
    """

    ANSWER = NO_SUCH_ROOM
