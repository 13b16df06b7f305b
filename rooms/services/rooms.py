"""Creating, configuring and archiving rooms."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import Exists, OuterRef
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from accounts.selectors import people_active
from audit.actions import AuditAction
from audit.services import audit_record
from rooms import permissions as perms
from rooms.errors import UNREACHABLE
from rooms.models import Membership, Room, RoomChange
from rooms.permissions import room_permissions_set
from rooms.ratelimit import Write, write_rate_check
from rooms.services._changes import room_change_append
from rooms.services._common import (
    require_chat_writer,
    require_not_archived,
    require_room_permission,
    require_unseparated,
    require_writable,
    room_refused,
    unreachable_answered,
)
from rooms.services.barriers import barrier_require_allowed
from rooms.services.epochs import room_epoch_start
from safechat.actions import action, action_transaction
from safechat.events import Event, publish
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import user_key_create
from safechat.locks import rows_locked

CREATE_ROOM = perms.CREATE_ROOM
MAX_DIRECT_PARTICIPANTS = 8


def _can_create_rooms(user: User) -> bool:
    return perms.may_create_rooms(user=user)


def _room_validate(room: Room) -> None:
    room.full_clean(exclude=["created_by"])


def _room_insert(
    *,
    actor: User,
    room: Room,
    others: list[User],
    actor_role: str = Membership.Role.OWNER,
    other_role: str = Membership.Role.MEMBER,
) -> Room:
    room.save()
    Membership.objects.create(room=room, user=actor, role=actor_role)
    room_permissions_set(room=room, user=actor, role=actor_role)
    for other in others:
        Membership.objects.create(room=room, user=other, role=other_role)
        room_permissions_set(room=room, user=other, role=other_role)
    room_epoch_start(room=room, reason=RoomEpoch.Reason.CREATED, actor=actor)
    audit_record(
        actor=actor,
        action=AuditAction.ROOM_CREATED,
        target=room,
        extra={"kind": room.kind, "visibility": room.visibility, "members": 1 + len(others)},
    )
    room_change_append(
        room_id=room.pk, kind=RoomChange.Kind.MEMBER_ADDED, user_id=actor.pk, role=actor_role
    )
    for other in others:
        room_change_append(
            room_id=room.pk, kind=RoomChange.Kind.MEMBER_ADDED, user_id=other.pk, role=other_role
        )
    return room


@action
def room_create(
    *,
    actor: User,
    name: str,
    topic: str = "",
    history_visible: bool = False,
    visibility: str = Room.Visibility.PRIVATE,
) -> Room:
    """Create a channel owned by ``actor``, with its first key epoch: private (invitation
    only, the default) or listed (anyone in the organisation whom information barriers
    allow may find and join it, ``room_join``).

    Needs the ``room_admin`` role unless ``SAFECHAT_MEMBERS_CAN_CREATE_ROOMS`` is on;
    refused for a compliance officer (read-only on chat) either way. Counted against
    ``SAFECHAT_ROOM_CREATE_RATE_LIMIT``. Locks nothing that exists already: it inserts
    the room, then its first epoch; the audit chain last.
    """
    require_chat_writer(actor=actor, room=None, person=actor)
    if not _can_create_rooms(actor):
        raise room_refused(
            actor=actor,
            room=None,
            reason="room creation",
            message="you are not allowed to create rooms",
        )
    room = Room(
        kind=Room.Kind.CHANNEL,
        name=name.strip(),
        topic=topic.strip(),
        history_visible=history_visible,
        visibility=visibility,
        created_by=actor,
    )
    _room_validate(room)
    write_rate_check(user_id=actor.pk, write=Write.ROOM_CREATE)
    with action_transaction():
        return _room_insert(actor=actor, room=room, others=[])


@action
def direct_conversation_create(*, actor: User, participants: list[User | None]) -> Room:
    """A direct conversation between ``actor`` and up to seven others.

    Its membership and roles are fixed for its life: "add people" makes a new room.
    Every participant, the starter too, is a member (``post_message``, ``upload_file``):
    nobody deletes another's message or file, renames, archives or changes the
    conversation's settings, or rotates its key on demand. A compliance officer
    (read-only on chat) starts none (refused) and is in none.
    Participants are active people only (``accounts.selectors.people_active``; a None
    stands for an id that names nobody, answered after the actor's own right with a
    ValidationError). A participant who is a compliance officer, or whom an information
    barrier separates from another, is refused and recorded as such, but answered as an
    unreachable one is (``rooms.errors.UnreachableError``, 400 on the API), so the
    answer tells nothing of anyone's role or barriers.
    A 1:1 conversation that already exists is returned instead of a second one, also
    when two identical requests arrive together. The other participants of a new one hear
    ``room.granted``, as someone added to a room does. Information barriers apply as they do
    to rooms; a participant deactivated at the same instant is refused. Counted against
    ``SAFECHAT_ROOM_CREATE_RATE_LIMIT`` (after the checks of the people asked for, so a
    refusal counts alike for each of them). Locks: every participant's user row (activity
    and barriers are checked under them), in id order, then the new room.
    """
    require_chat_writer(actor=actor, room=None, person=actor)
    if any(p is None for p in participants):
        raise ValidationError(UNREACHABLE)
    found = {p.pk: p for p in participants if p is not None and p.pk != actor.pk}
    others = sorted(found.values(), key=lambda u: u.pk)
    if not others:
        raise ValidationError("a direct conversation needs at least one other person")
    if len(others) + 1 > MAX_DIRECT_PARTICIPANTS:
        raise ValidationError(f"a direct conversation has at most {MAX_DIRECT_PARTICIPANTS} people")
    if people_active().filter(pk__in=found).count() != len(others):
        raise ValidationError(UNREACHABLE)
    with unreachable_answered():  # quick answers; checked again under the locks
        for other in others:
            require_chat_writer(actor=actor, room=None, person=other)
        barrier_require_allowed(
            actor=actor, room=None, user_ids=[actor.pk, *(o.pk for o in others)]
        )
    # Counted after every check about the people asked for, as for an id that names
    # nobody: counting earlier for some refusals than others would tell them apart.
    write_rate_check(user_id=actor.pk, write=Write.ROOM_CREATE)  # before any lock
    for person in [actor, *others]:
        user_key_create(user=person)  # before any lock: it appends to the audit chain
    with action_transaction():
        # The participants' rows, in id order: the barrier check and the reuse of an
        # existing conversation hold until the commit, so two identical requests at
        # the same instant make one conversation, and a barrier raced is refused.
        people = rows_locked(User, [actor.pk, *(o.pk for o in others)])
        if len(people) != len(others) + 1 or not all(p.is_active for p in people):
            # deactivated at the same instant (deactivation locks the person's row too)
            raise ValidationError(UNREACHABLE)
        # A role granted at the same instant locks the person too.
        require_chat_writer(actor=actor, room=None, person=actor)
        with unreachable_answered():
            for person in people:
                if person.pk != actor.pk:
                    require_chat_writer(actor=actor, room=None, person=person)
            barrier_require_allowed(
                actor=actor, room=None, user_ids=[actor.pk, *(o.pk for o in others)]
            )
        if len(others) == 1:
            # The live conversation of exactly these two: never a group conversation they
            # are both in (whichever comes first by name), which would make a second one.
            pair = [actor.pk, others[0].pk]
            someone_else = Membership.objects.filter(room=OuterRef("pk")).exclude(user__in=pair)
            existing = (
                Room.objects.filter(kind=Room.Kind.DIRECT, memberships__user=actor)
                .filter(memberships__user=others[0])
                .filter(archived_at__isnull=True)
                .exclude(Exists(someone_else))
                .order_by("pk")
                .first()
            )
            if existing is not None:
                return existing
        name = ", ".join(sorted(u.get_username() for u in [actor, *others]))[:120]
        room = Room(kind=Room.Kind.DIRECT, name=name, history_visible=True, created_by=actor)
        _room_validate(room)
        # Everyone in a direct conversation holds one role, member: everyone posts, and
        # nobody holds power over the others' words or the conversation itself.
        room = _room_insert(
            actor=actor, room=room, others=others, actor_role=Membership.Role.MEMBER
        )
        # The others learn of it at once, as someone added to a room does: their sockets
        # subscribe to it and their room lists show it (after the commit).
        for other in others:
            publish(Event.ROOM_GRANTED, to_user=other.pk, room_id=room.pk)
        return room


@action
def room_manage_require(*, actor: User, room: Room) -> None:
    """Refuse (``Refused``, recorded) unless ``actor`` manages ``room``: its members or its
    settings. For an edge that answers a manager's form without calling the action the
    form was for (the form was invalid), so a non-manager is refused on the record too.
    """
    granted = perms.room_permissions_of(room=room, user=actor)
    if not granted & {perms.MANAGE_MEMBERS, perms.MANAGE_ROOM}:
        raise room_refused(
            actor=actor,
            room=room,
            reason=f"missing {perms.MANAGE_MEMBERS} or {perms.MANAGE_ROOM}",
            message="you are not allowed to do this in this room",
        )


DIRECT_NEVER_LISTED = "a direct conversation is never listed"


@action
def room_update(
    *,
    actor: User,
    room: Room,
    name: str | None = None,
    topic: str | None = None,
    history_visible: bool | None = None,
    visibility: str | None = None,
) -> Room:
    """Change a room's settings (``manage_room``): name, topic, history and visibility
    (private or listed; a direct conversation is never listed, refused as invalid).

    Recorded as ``room.updated`` with the fields changed. Listing a room shows its name,
    topic and member count to everyone a barrier does not keep from it, who may then join
    it; making it private again hides it from them (its members stay). Locks: the room;
    the permission and the archive are checked again under it. Listing a direct
    conversation is invalid input, whoever asks: a ``ValidationError`` naming
    ``visibility``, before the permission (which no one holds in a direct conversation).
    """
    if visibility == Room.Visibility.LISTED and room.kind == Room.Kind.DIRECT:
        raise ValidationError({"visibility": DIRECT_NEVER_LISTED})
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_ROOM)
    require_not_archived(actor=actor, room=room)
    write_rate_check(user_id=actor.pk, write=Write.ROOM_SETTINGS)
    with action_transaction():
        locked = _room_locked(room)
        require_writable(
            actor=actor, room=locked, permission=perms.MANAGE_ROOM, operation="room.update"
        )
        return _room_change(
            actor=actor,
            room=locked,
            name=name,
            topic=topic,
            history_visible=history_visible,
            visibility=visibility,
        )


def _room_locked(room: Room) -> Room:
    locked = rows_locked(Room, [room.pk])
    if not locked:
        raise Http404("no such room")
    return locked[0]


def _room_change(
    *,
    actor: User,
    room: Room,
    name: str | None,
    topic: str | None,
    history_visible: bool | None,
    visibility: str | None,
) -> Room:
    changed = []
    if name is not None and name.strip() != room.name:
        room.name = name.strip()
        changed.append("name")
    if topic is not None and topic.strip() != room.topic:
        room.topic = topic.strip()
        changed.append("topic")
    if history_visible is not None and history_visible != room.history_visible:
        room.history_visible = history_visible
        changed.append("history_visible")
    if visibility is not None and visibility != room.visibility:
        if visibility not in Room.Visibility.values:
            raise ValidationError(f"unknown visibility {visibility!r}")
        if room.kind == Room.Kind.DIRECT:
            raise ValidationError({"visibility": DIRECT_NEVER_LISTED})
        room.visibility = visibility
        changed.append("visibility")
    if changed:
        _room_validate(room)
        room.save(update_fields=changed)
        audit_record(
            actor=actor, action=AuditAction.ROOM_UPDATED, target=room, extra={"fields": changed}
        )
        publish(Event.ROOM_UPDATED, room_id=room.pk)
    return room


@action
def room_archive(*, actor: User, room: Room) -> Room:
    """Archive a room: it stays readable and becomes read-only for everyone.

    Locks: the room; the permission is checked again under it, and of two archives at
    the same instant one is recorded (the other answers the archived room).
    """
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_ROOM)
    if room.is_archived:
        return room
    write_rate_check(user_id=actor.pk, write=Write.ROOM_SETTINGS)
    with action_transaction():
        locked = _room_locked(room)
        require_room_permission(actor=actor, room=locked, permission=perms.MANAGE_ROOM)
        if locked.is_archived:
            return locked
        require_unseparated(actor=actor, room=locked, operation="room.archive")
        locked.archived_at = timezone.now()
        locked.save(update_fields=["archived_at"])
        audit_record(actor=actor, action=AuditAction.ROOM_ARCHIVED, target=locked)
        publish(Event.ROOM_ARCHIVED, room_id=locked.pk)
    room.archived_at = locked.archived_at
    return locked


@action
def room_unarchive(*, actor: User, room: Room) -> Room:
    """Make an archived room writable again: for its owner (``manage_room``) or a room
    admin (the ``room_admin`` role, ``accounts.create_room``) who is a member of it.

    Recorded as ``room.unarchived``; clients hear ``room.updated``. Counted against
    ``SAFECHAT_ROOM_SETTINGS_RATE_LIMIT``. Locks: the room; the right is checked again
    under it, and of two unarchives at the same instant one is recorded.
    """
    _require_unarchive_right(actor=actor, room=room)
    if not room.is_archived:
        return room
    write_rate_check(user_id=actor.pk, write=Write.ROOM_SETTINGS)
    with action_transaction():
        locked = _room_locked(room)
        _require_unarchive_right(actor=actor, room=locked)
        if not locked.is_archived:
            return locked
        require_unseparated(actor=actor, room=locked, operation="room.unarchive")
        archived_at = locked.archived_at
        locked.archived_at = None
        locked.save(update_fields=["archived_at"])
        audit_record(
            actor=actor,
            action=AuditAction.ROOM_UNARCHIVED,
            target=locked,
            extra={"archived_at": archived_at.isoformat() if archived_at else None},
        )
        publish(Event.ROOM_UPDATED, room_id=locked.pk)
    room.archived_at = None
    return locked


def _require_unarchive_right(*, actor: User, room: Room) -> None:
    require_chat_writer(actor=actor, room=room, person=actor)
    granted = perms.room_permissions_of(room=room, user=actor)
    if perms.MANAGE_ROOM in granted:
        return
    if perms.VIEW in granted and actor.has_perm(CREATE_ROOM):
        return
    raise room_refused(
        actor=actor,
        room=room,
        reason="unarchive",
        message="only an owner or a room admin can unarchive a room",
    )


@action
def room_key_rotate(*, actor: User, room: Room) -> RoomEpoch:
    """Start a new key epoch on demand (``manage_room``), in a live room only: an
    archived room is read-only, its keys included (refused, ``archived``). Locks: the
    room (the permission and the archive are checked again under it), then key rows;
    the audit chain last."""
    require_room_permission(actor=actor, room=room, permission=perms.MANAGE_ROOM)
    require_not_archived(actor=actor, room=room)
    with action_transaction():
        locked = _room_locked(room)
        require_writable(
            actor=actor, room=locked, permission=perms.MANAGE_ROOM, operation="room.key.rotate"
        )
        return room_epoch_start(room=locked, reason=RoomEpoch.Reason.ON_DEMAND, actor=actor)


__all__ = [
    "direct_conversation_create",
    "room_archive",
    "room_create",
    "room_key_rotate",
    "room_unarchive",
    "room_update",
]
