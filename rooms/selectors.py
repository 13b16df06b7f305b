"""Reads on rooms, always scoped to the requesting user.

A room the user cannot view does not exist for them: every selector answers 404
(``Http404``), in lists too, so ids cannot be probed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Final, Literal

from django.contrib.contenttypes.models import ContentType
from django.db.models import CharField, Count, Exists, F, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Cast
from django.http import Http404
from guardian.models import UserObjectPermission

from accounts.models import User
from accounts.selectors import CHAT_READ_ONLY_ROLES, people_active, user_reads_chat_only
from rooms import permissions as perms
from rooms.attachments import AttachmentView, attachments_open
from rooms.models import (
    InformationBarrier,
    Membership,
    Mention,
    Message,
    MessageRevision,
    Reaction,
    Room,
    RoomChange,
)
from safechat.crypto import CryptoError
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.services import message_decrypt
from safechat.pagination import Cursor, Page, page_of
from safechat.unicode_text import look_alike_keys, reaction_key

PAGE_SIZE_MAX = 100


TextStatus = Literal["ok", "unavailable", "integrity_failure"]
TEXT_OK: Final = "ok"
TEXT_UNAVAILABLE: Final = "unavailable"  # no key copy: shredded, or never held
TEXT_INTEGRITY_FAILURE: Final = "integrity_failure"  # tampered or corrupt: reported


@dataclass(frozen=True)
class Mentioned:
    """A member a message names (``@username``): a ``Mention`` row, with how they are shown."""

    user_id: int
    username: str  # canonical (PRECIS UsernameCaseMapped), as stored
    name: str  # display name (``User.display_name``)


@dataclass(frozen=True)
class MessageView:
    """A message as its reader may see it: data, never markup (``rooms.wire`` renders it
    and puts it on the wire)."""

    id: int
    room_id: int
    seq: int
    sender_id: int
    sender: str  # username
    sender_name: str  # display name (``User.display_name``)
    parent_id: int | None
    created_at: datetime
    edited_at: datetime | None
    deleted: bool
    # None when deleted, or when the key is gone (shredded by policy, or never held).
    text: str | None
    reactions: dict[str, list[int]] = field(default_factory=dict)
    # Why ``text`` is None, for a message that is not deleted (TEXT_* above).
    text_status: TextStatus = TEXT_OK
    # The members it names, by username order (``rooms.markdown`` marks them up).
    mentions: tuple[Mentioned, ...] = ()
    # The file this message shares, opened for the reader (None: no file, or none they
    # can open); see ``rooms.attachments``.
    attachment: AttachmentView | None = None


def _view_permission(user: User) -> QuerySet[UserObjectPermission]:
    """django-guardian's ``view_room`` grants of ``user`` on rooms."""
    return UserObjectPermission.objects.filter(
        user=user,
        content_type=ContentType.objects.get_for_model(Room),
        permission__codename=perms.VIEW,
    )


def rooms_for_user(*, user: User) -> QuerySet[Room]:
    """Rooms ``user`` may view: a membership and guardian's ``view_room`` object permission.

    Superusers get nothing extra. One query with an EXISTS, rather than guardian's
    ``get_objects_for_user``, because every post and every delivery asks it.
    """
    if not user.is_active:
        return Room.objects.none()
    granted = _view_permission(user).filter(object_pk=Cast(OuterRef("pk"), CharField()))
    return Room.objects.filter(Exists(granted), memberships__user=user)


def room_list_for_user(*, user: User) -> QuerySet[Room]:
    """Viewable rooms with each one's unread count for ``user`` (``unread``) and how the room
    notifies them (``mute``, ``Membership.Mute``)."""
    own = Membership.objects.filter(room=OuterRef("pk"), user=user)
    marker = own.values("last_read_message_id")[:1]
    return (
        rooms_for_user(user=user)
        .annotate(last_read=Subquery(marker), mute=Subquery(own.values("mute")[:1]))
        .annotate(
            unread=Count(
                "messages",
                filter=Q(messages__id__gt=Subquery(marker), messages__deleted_at__isnull=True)
                & ~Q(messages__sender=user),
            )
        )
        .order_by("archived_at", "name", "pk")
    )


@dataclass(frozen=True)
class RoomLabel:
    """What a room is called for one viewer (``room_labels``). Text for people, never
    markup: every edge isolates it (``<bdi>``, ``dir="auto"``) as it does other user text.
    """

    # A channel's name; a direct conversation's other participants' display names
    # (``User.display_name``: the username of someone with no name), comma-separated,
    # by name then username.
    text: str
    # What tells the room apart, shown beside ``text``: for a direct conversation always
    # its other participants' "@username"s (a display name alone could be anyone's; and
    # " · #<id>" when two conversations have the very same people); for a channel empty,
    # unless another room of the viewer's list has a label that looks the same
    # (``labels_look_alike``): then "#<id>".
    qualifier: str = ""
    # A direct conversation's other participants' usernames, in the order of ``text``
    # (empty for a channel): the list's tooltip, so a display name never stands alone.
    usernames: tuple[str, ...] = ()

    @property
    def full(self) -> str:
        """``text`` with its qualifier, as plain text (titles, notices, notifications)."""
        return f"{self.text} ({self.qualifier})" if self.qualifier else self.text

    @property
    def hint(self) -> str:
        """The other participants' usernames ("@alice, @rita.r"); empty for a channel."""
        return ", ".join(f"@{name}" for name in self.usernames)


def label_json(label: RoomLabel) -> dict[str, object]:
    """A label as JSON, the one form of the API's room objects (``label``) and the chat
    page's configuration: ``{"text": ..., "qualifier": ..., "usernames": [...]}``."""
    return {"text": label.text, "qualifier": label.qualifier, "usernames": list(label.usernames)}


def labels_look_alike(a: str, b: str) -> bool:
    """Whether a reader could take the label ``a`` for ``b``: equal once compatibility
    forms (NFKC) and case are folded and confusable letters mapped to their prototype
    (the UTS #39 skeleton, as usernames are compared): "Rates", "rates" and "Rates"
    spelt with a Cyrillic a (U+0430) look alike; so do capitals that look alike across
    scripts ("PATE" in Cyrillic capitals and in Latin), whose lower-case forms do not
    (``safechat.unicode_text.look_alike_keys``)."""
    return bool(look_alike_keys(a) & look_alike_keys(b))


def look_alike_groups(texts: dict[int, str]) -> list[list[int]]:
    """The ids of ``texts`` grouped by ``labels_look_alike`` (transitively: a key shared
    with any member joins the group), each group in the order of ``texts``."""
    parent = {pk: pk for pk in texts}

    def root(pk: int) -> int:
        while parent[pk] != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    owner: dict[str, int] = {}
    for pk, text in texts.items():
        for key in look_alike_keys(text):
            other = owner.setdefault(key, pk)
            parent[root(pk)] = root(other)
    groups: dict[int, list[int]] = {}
    for pk in texts:
        groups.setdefault(root(pk), []).append(pk)
    return list(groups.values())


def room_labels(*, viewer: User) -> dict[int, RoomLabel]:
    """The label (``RoomLabel``) of every room ``viewer`` may view, by room id: the one
    computation of what a room is called, for the portal's pages, the API's room objects
    and, through the API, the chat client's list, titles and notifications.

    A direct conversation is called by its other participants, never by the viewer's
    own name (its stored ``name`` lists every username, the viewer's too); a channel by
    its name. A conversation's ``qualifier`` always names its people by username; channels
    whose labels look alike within the viewer's rooms (``labels_look_alike``: two
    channels of one name, a channel named like a person) each get "#<id>"; a channel
    nobody else's resembles gets none.
    Two queries, whatever the number of rooms.
    """
    rooms = list(rooms_for_user(user=viewer).values_list("pk", "kind", "name"))
    direct = [pk for pk, kind, _ in rooms if kind == Room.Kind.DIRECT]
    others: dict[int, list[User]] = {}
    for membership in (
        Membership.objects.filter(room_id__in=direct).exclude(user=viewer).select_related("user")
    ):
        others.setdefault(membership.room_id, []).append(membership.user)
    named: dict[int, tuple[str, tuple[str, ...]]] = {}
    for pk, kind, name in rooms:
        people = sorted(
            others.get(pk, []), key=lambda u: (u.display_name().casefold(), u.get_username())
        )
        if kind == Room.Kind.DIRECT and people:
            named[pk] = (
                ", ".join(p.display_name() for p in people),
                tuple(p.get_username() for p in people),
            )
        else:  # a channel; or a conversation left with nobody else, by its stored name
            named[pk] = (name, ())
    labels: dict[int, RoomLabel] = {}
    for same in look_alike_groups({pk: text for pk, (text, _) in named.items()}):
        for pk in same:
            text, usernames = named[pk]
            # A conversation always names its people by username too: a display name is
            # free text ("Ada Admin" may be @eve), a username is unique by its skeleton.
            qualifier = ", ".join(f"@{u}" for u in usernames)
            if len(same) > 1:
                qualifier = qualifier or f"#{pk}"
                if usernames and sum(named[o][1] == usernames for o in same) > 1:
                    qualifier += f" · #{pk}"
            labels[pk] = RoomLabel(text=text, qualifier=qualifier, usernames=usernames)
    return labels


def room_label(*, viewer: User, room: Room) -> RoomLabel:
    """``room``'s label for ``viewer`` (``room_labels``); a room they may not view (left
    a moment ago) is called by its stored name."""
    return room_labels(viewer=viewer).get(room.pk) or RoomLabel(text=room.name)


def room_list_labelled(*, user: User) -> list[tuple[Room, RoomLabel]]:
    """``room_list_for_user`` with each room's label for ``user``, in the room list's
    order: rooms not archived first, then by label (lower-cased, as the chat client
    sorts it), then by id."""
    labels = room_labels(viewer=user)
    rows = [
        (room, labels.get(room.pk) or RoomLabel(text=room.name))
        for room in room_list_for_user(user=user)
    ]
    return sorted(rows, key=lambda row: (row[0].is_archived, row[1].text.lower(), row[0].pk))


def _walled_groups(user: User) -> set[int]:
    """The groups an information barrier separates ``user`` from: for each barrier, the
    other side of each side ``user`` is in (both sides, if they are in both)."""
    own = set(user.groups.values_list("pk", flat=True))
    if not own:
        return set()
    walled: set[int] = set()
    for a, b in InformationBarrier.objects.filter(
        Q(group_a__in=own) | Q(group_b__in=own)
    ).values_list("group_a_id", "group_b_id"):
        if a in own:
            walled.add(b)
        if b in own:
            walled.add(a)
    return walled


JOINABLE_PAGE_MAX = 100


def rooms_joinable(*, user: User, query: str = "") -> QuerySet[Room]:
    """The listed rooms ``user`` may join (``services.room_join``), each with its
    ``member_count``: listed channels, not archived, that ``user`` is not in, and where no
    information barrier separates them from any current member. Nothing for someone
    inactive or read-only on chat (a compliance officer joins nothing). ``query``
    (case-insensitive) matches a part of the name or the topic; one holding a NUL
    character matches nothing (no name holds one; PostgreSQL cannot compare one).

    A browsing answer, not a permission: ``room_join`` decides again under its locks.
    Unordered and unbounded (a list orders and cuts it).
    """
    if not user.is_active or user_reads_chat_only(user=user):
        return Room.objects.none()
    rooms = Room.objects.filter(
        visibility=Room.Visibility.LISTED, kind=Room.Kind.CHANNEL, archived_at__isnull=True
    ).exclude(Exists(Membership.objects.filter(room=OuterRef("pk"), user=user)))
    query = query.strip()
    if "\x00" in query:
        return Room.objects.none()
    if query:
        rooms = rooms.filter(Q(name__icontains=query) | Q(topic__icontains=query))
    walled = _walled_groups(user)
    if walled:
        behind_a_wall = Membership.objects.filter(
            room=OuterRef("pk"), user__groups__in=walled
        ).exclude(user=user)
        rooms = rooms.exclude(Exists(behind_a_wall))
    members = Membership.objects.filter(room=OuterRef("pk")).values("room").annotate(n=Count("pk"))
    return rooms.annotate(member_count=Subquery(members.values("n")[:1]))


def joinable_qualifiers(*, user: User, rooms: list[Room]) -> dict[int, str]:
    """What tells each of ``rooms`` (a Browse page's listed rooms) apart, by id: "#<id>"
    for a room whose name looks like another's on the page or in ``user``'s own room
    list (``labels_look_alike``, as ``room_labels`` qualifies the room list); rooms whose
    names resemble nobody's are not in the answer."""
    texts = {pk: label.text for pk, label in room_labels(viewer=user).items()}
    offered = {room.pk for room in rooms}
    texts.update({room.pk: room.name for room in rooms})
    return {
        pk: f"#{pk}"
        for same in look_alike_groups(texts)
        if len(same) > 1
        for pk in same
        if pk in offered
    }


def room_for_join(*, room_id: object) -> Room | None:
    """The room ``room_id`` names, whoever asks, or None: only for ``services.room_join``,
    which decides and answers every room it refuses exactly as an id naming none."""
    try:
        pk = int(str(room_id))
    except ValueError:
        return None
    return Room.objects.filter(pk=pk).first()


def _pk_or_404(value: object, not_found: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise Http404(not_found) from None


def room_get_for_user(*, user: User, room_id: object) -> Room:
    """The room if ``user`` may view it, else Http404 (whether or not it exists)."""
    pk = _pk_or_404(room_id, "no such room")
    room = rooms_for_user(user=user).filter(pk=pk).first()
    if room is None:
        raise Http404("no such room")
    return room


def room_members(*, user: User, room: Room) -> QuerySet[Membership]:
    room_get_for_user(user=user, room_id=room.pk)
    return Membership.objects.filter(room=room).select_related("user").order_by("user__username")


def message_get_for_user(*, user: User, message_id: object) -> Message:
    """A message in a room ``user`` may view; deleted messages, and messages from before
    they joined a room that hides history, are not found by members."""
    pk = _pk_or_404(message_id, "no such message")
    message = (
        Message.objects.filter(pk=pk, deleted_at__isnull=True, room__in=rooms_for_user(user=user))
        .select_related("room", "sender")
        .first()
    )
    if message is None or message.seq <= visible_from_seq(reader=user, room=message.room):
        raise Http404("no such message")
    return message


def visible_from_seq(*, reader: User, room: Room) -> int:
    """The room's message number after which ``reader`` sees messages: 0 (everything) unless
    the room hid history when they joined (``Membership.visible_from_seq``)."""
    found = Membership.objects.filter(room=room, user=reader).values_list(
        "visible_from_seq", flat=True
    )
    return next(iter(found), 0)


def _decrypt_for(
    reader: User, message: Message, stored: Message | MessageRevision | None = None
) -> str | None:
    """The text of ``message`` (or of its earlier revision ``stored``) with ``reader``'s keys;
    None when they hold no copy of that epoch's key or it fails its integrity check
    (see :func:`_open_for`)."""
    return _open_for(reader, message, stored)[0]


def _open_for(
    reader: User, message: Message, stored: Message | MessageRevision | None = None
) -> tuple[str | None, TextStatus]:
    """(text, TEXT_* status) of ``message`` or its revision ``stored`` for ``reader``.

    An integrity failure is never shown as text (the keyring reported it).
    """
    stored = stored or message
    try:
        text = message_decrypt(
            reader_id=reader.pk,
            room_id=message.room_id,
            message_uid=message.uid,
            epoch=stored.epoch,
            sender_id=message.sender_id,
            ciphertext=bytes(stored.ciphertext),
            revision=stored.revision,
        )
    except IntegrityFailure:  # reported (logged, audited once) where it was raised
        return None, TEXT_INTEGRITY_FAILURE
    except CryptoError:
        return None, TEXT_UNAVAILABLE
    return text, TEXT_OK


def message_reactions(*, message: Message) -> dict[str, list[int]]:
    """Who reacted with what, in the order they did."""
    return _reactions_of([message.pk]).get(message.pk, {})


def _reactions_of(message_ids: list[int]) -> dict[int, dict[str, list[int]]]:
    """Per message, who reacted with what, in the order they did: one query for a page.
    Each emoji in its one spelling (``reaction_key``): "❤" stored before reactions took
    one counts with "❤️", each person once."""
    reactions: dict[int, dict[str, list[int]]] = {}
    rows = (
        Reaction.objects.filter(message_id__in=message_ids)
        .order_by("pk")
        .values_list("message_id", "emoji", "user_id")
    )
    for message_id, emoji, user_id in rows:
        users = reactions.setdefault(message_id, {}).setdefault(reaction_key(emoji), [])
        if user_id not in users:
            users.append(user_id)
    return reactions


def _mentions_of(message_ids: list[int]) -> dict[int, tuple[Mentioned, ...]]:
    """Per message, the members it names (``Mention`` rows), by username: one query."""
    found: dict[int, list[Mentioned]] = {}
    rows = (
        Mention.objects.filter(message_id__in=message_ids)
        .select_related("user")
        .order_by("user__username")
    )
    for row in rows:
        found.setdefault(row.message_id, []).append(
            Mentioned(row.user_id, row.user.get_username(), row.user.display_name())
        )
    return {message_id: tuple(named) for message_id, named in found.items()}


def message_view(
    *,
    reader: User,
    message: Message,
    reactions: dict[str, list[int]] | None = None,
    mentions: tuple[Mentioned, ...] | None = None,
    attachments: dict[int, AttachmentView] | None = None,
) -> MessageView:
    """What ``reader`` sees of a message they may view; text decrypted with their keys.

    ``reactions`` (from ``message_reactions``), ``mentions`` and ``attachments`` (from
    ``rooms.attachments.attachments_open``) save the queries when the caller has them
    (for a page, one query each).
    """
    deleted = message.deleted_at is not None
    text, status = (None, TEXT_UNAVAILABLE) if deleted else _open_for(reader, message)
    if reactions is None:
        reactions = message_reactions(message=message)
    if mentions is None:
        mentions = _mentions_of([message.pk]).get(message.pk, ())
    if attachments is None:
        attachments = {} if deleted else attachments_open(reader, [message])
    return MessageView(
        id=message.pk,
        room_id=message.room_id,
        seq=message.seq,
        sender_id=message.sender_id,
        sender=message.sender.get_username(),
        sender_name=message.sender.display_name(),
        parent_id=message.parent_id,
        created_at=message.created_at,
        edited_at=message.edited_at,
        deleted=deleted,
        text=text,
        reactions=reactions,
        text_status=status,
        mentions=mentions,
        attachment=None if deleted else attachments.get(message.pk),
    )


def message_page(
    *,
    reader: User,
    room: Room,
    before: int | None = None,
    after: int | None = None,
    limit: int = 50,
) -> list[MessageView]:
    """Up to ``limit`` messages of a viewable room, newest first, around a cursor.

    ``before``: older than that id; ``after``: newer than that id (what a
    reconnecting client missed). Deleted messages are left out, and so, in a room that
    hides history, is everything posted before the reader joined (``visible_from_seq``).
    """
    room_get_for_user(user=reader, room_id=room.pk)
    limit = max(1, min(limit, PAGE_SIZE_MAX))
    messages = Message.objects.filter(
        room=room, deleted_at__isnull=True, seq__gt=visible_from_seq(reader=reader, room=room)
    ).select_related("sender")
    if before is not None:
        messages = messages.filter(pk__lt=before)
    if after is not None:
        # Oldest first past the cursor, so a resync never skips a message; returned newest first.
        chunk = list(messages.filter(pk__gt=after).order_by("id")[:limit])
        chunk.reverse()
    else:
        chunk = list(messages.order_by("-id")[:limit])
    return _views(reader, chunk)


def _views(reader: User, messages: list[Message]) -> list[MessageView]:
    """``message_view`` of each of ``messages``, with a few queries for all of them."""
    ids = [m.pk for m in messages]
    reactions, mentions = _reactions_of(ids), _mentions_of(ids)
    attachments = attachments_open(reader, messages)
    return [
        message_view(
            reader=reader,
            message=m,
            reactions=reactions.get(m.pk, {}),
            mentions=mentions.get(m.pk, ()),
            attachments=attachments,
        )
        for m in messages
    ]


MENTIONS_PAGE_MAX = 50


def _mentions_visible(user: User) -> QuerySet[Message]:
    """The messages that mention ``user`` and that ``user`` may read now (unordered)."""
    visible_from = Membership.objects.filter(room=OuterRef("room_id"), user=user).values(
        "visible_from_seq"
    )[:1]
    return (
        Message.objects.filter(
            mentions__user=user,
            deleted_at__isnull=True,
            room__in=rooms_for_user(user=user),
        )
        .annotate(visible_from=Subquery(visible_from))
        .filter(seq__gt=F("visible_from"))
        .select_related("sender")
    )


def mentions_for_user(
    *, user: User, before: int | None = None, limit: int = MENTIONS_PAGE_MAX
) -> list[MessageView]:
    """The messages that mention ``user`` (``Mention`` rows), across the rooms they may view
    now, newest first: at most ``limit`` (capped at ``MENTIONS_PAGE_MAX``), older than the
    message id ``before`` when given.

    Access is derived again on every call, never kept with the mention: a room ``user``
    left or lost (``rooms_for_user``), a deleted message, and a message from before they
    joined a room that hides history (``Membership.visible_from_seq``) are not listed.
    Text is decrypted with ``user``'s keys, as in the room.
    """
    limit = max(1, min(limit, MENTIONS_PAGE_MAX))
    messages = _mentions_visible(user)
    if before is not None:
        messages = messages.filter(pk__lt=before)
    return _views(user, list(messages.order_by("-id")[:limit]))


def mentions_page(*, user: User, cursor: Cursor) -> Page[MessageView]:
    """The page ``cursor`` names (``safechat.pagination``, keyed on the message id, newest
    first) of the messages :func:`mentions_for_user` lists, under the same access rules;
    ``cursor.limit`` at most ``MENTIONS_PAGE_MAX``."""
    page = page_of(_mentions_visible(user), cursor=cursor, newest_first=True)
    return page.map(lambda chunk: _views(user, chunk))


def message_page_at(*, reader: User, room: Room, cursor: Cursor) -> Page[MessageView]:
    """The page of a viewable room's messages ``cursor`` names, newest first, keyed on
    the message id (``safechat.pagination``); the same messages as ``message_page``:
    deleted ones and, in a room that hides history, those from before the reader joined,
    are left out."""
    room_get_for_user(user=reader, room_id=room.pk)
    messages = Message.objects.filter(
        room=room, deleted_at__isnull=True, seq__gt=visible_from_seq(reader=reader, room=room)
    ).select_related("sender")
    page = page_of(messages, cursor=cursor, newest_first=True)

    return page.map(lambda chunk: _views(reader, chunk))


def message_revisions(*, reader: User, message: Message) -> list[tuple[int, str | None]]:
    """Earlier texts of a message (compliance view); decrypted with ``reader``'s keys."""
    return [
        (revision.revision, _decrypt_for(reader, message, revision))
        for revision in MessageRevision.objects.filter(message=message).order_by("revision")
    ]


def room_last_messages(*, user: User) -> dict[int, tuple[int, int]]:
    """The newest message's (id, seq), (0, 0) if none, of each room ``user`` may view.

    The portal hands these to its socket as the ``sync`` cursors, so nothing posted
    between rendering the page and opening the socket is missed.
    """
    rows = (
        rooms_for_user(user=user)
        .annotate(last_id=Max("messages__id"))
        .values_list("pk", "last_id", "message_seq")
    )
    return {pk: (last_id or 0, seq) for pk, last_id, seq in rows}


PEOPLE_PAGE_MAX = 50


def _people_reachable(user: User) -> QuerySet[User]:
    # The groups a barrier separates ``user`` from (``_walled_groups``: both sides for
    # someone in both, as ``barrier_conflicts`` pairs them).
    return (
        people_active()
        .exclude(pk=user.pk)
        .exclude(groups__name__in=CHAT_READ_ONLY_ROLES)
        .exclude(groups__in=_walled_groups(user))
    )


def people_reachable_matching(*, user: User, query: str = "") -> QuerySet[User]:
    """Everyone ``people_reachable`` would offer ``user`` for ``query``, unordered and
    unbounded (a paginated list orders and cuts it). A ``query`` holding a NUL character
    matches nobody: no name holds one (every edge refuses it), and PostgreSQL cannot
    compare text with one.

    ``query`` is taken word by word (split on spaces; a leading "@" dropped): each word
    must be part of the username, the first or the last name, so "Bob Smith", "smith bob"
    and "bob sm" all find Bob Smith."""
    found = _people_reachable(user)
    if "\x00" in query:
        return found.none()
    for word in query.split():
        word = word.removeprefix("@")
        if word:
            found = found.filter(
                Q(username__icontains=word)
                | Q(first_name__icontains=word)
                | Q(last_name__icontains=word)
            )
    return found.distinct()


def people_addable_matching(*, user: User, room: Room, query: str = "") -> QuerySet[User]:
    """Those of ``people_reachable_matching(user, query)`` who could join ``room`` now:
    not its members, and not anyone an information barrier separates from one of its
    members (the rule ``membership_add`` applies under its locks). The room's add-member
    suggestions: a person the add would refuse is not offered. ``room`` must be one
    ``user`` may view (``room_get_for_user``); unordered and unbounded."""
    member_ids = Membership.objects.filter(room=room).values("user_id")
    member_groups = set(
        User.groups.through.objects.filter(user_id__in=member_ids).values_list(
            "group_id", flat=True
        )
    )
    walled: set[int] = set()
    for a, b in InformationBarrier.objects.filter(
        Q(group_a__in=member_groups) | Q(group_b__in=member_groups)
    ).values_list("group_a_id", "group_b_id"):
        if a in member_groups:
            walled.add(b)
        if b in member_groups:
            walled.add(a)
    found = people_reachable_matching(user=user, query=query).exclude(pk__in=member_ids)
    if walled:
        found = found.exclude(groups__in=walled)
    return found


def people_reachable(*, user: User, query: str = "", limit: int = PEOPLE_PAGE_MAX) -> list[User]:
    """The people ``user`` may start a conversation with or pick for a room.

    Active people only (``accounts.selectors.people_active``), never ``user`` themself,
    never someone read-only on chat (a compliance officer is never a member), and never
    someone an information barrier separates from ``user``: a person behind a wall is not
    offered. ``query`` (case-insensitive, word by word) matches the username, first or
    last name ("Bob Smith" and "Smith Bob" find him); at most ``limit`` people (capped at
    ``PEOPLE_PAGE_MAX``), ordered by username.

    A picker's answer, not a permission: the services decide again, under their locks,
    when the conversation is made or the member added.
    """
    found = people_reachable_matching(user=user, query=query)
    return list(found.order_by("username")[: max(0, min(limit, PEOPLE_PAGE_MAX))])


def people_reachable_by_ids(*, user: User, ids: list[int]) -> list[User]:
    """Those of ``ids`` that ``people_reachable`` would offer ``user``, by username; ids of
    nobody, or of someone not reachable, are left out silently (a picker's answer)."""
    if not ids:
        return []
    return list(_people_reachable(user).filter(pk__in=ids[:PEOPLE_PAGE_MAX]).order_by("username"))


CHANGES_PAGE_MAX = 100


@dataclass(frozen=True)
class ChangeView:
    """One entry of the change feed as ``reader`` may see it (``changes_after``)."""

    id: int
    kind: str
    room_id: int
    occurred_at: datetime
    message_id: int | None
    user_id: int | None
    role: str
    # The message as the reader sees it now (edited since); None when it was deleted
    # since (as the list and GET no longer find it), and for membership entries.
    message: MessageView | None


@dataclass(frozen=True)
class ChangePage:
    """Entries past a cursor; ``next_after`` is the cursor to ask with next time (never
    behind the one given); ``has_more``: more entries were already there."""

    items: list[ChangeView]
    has_more: bool
    next_after: int


def changes_after(*, reader: User, after: int, limit: int = CHANGES_PAGE_MAX) -> ChangePage:
    """The change feed: what changed, after the entry ``after``, in the rooms ``reader``
    may view, in commit order (``RoomChange``), at most ``limit`` entries.

    Access is decided now, for each entry, not when it was written: nothing of a room
    the reader may no longer view appears, except the entry of their own removal (so a
    poller learns it lost the room, and nothing else of it); a message entry appears only
    while the message is one the reader may see under the room's history rule
    (``visible_from_seq``), with the message as it is now (none once it is deleted: its
    entries stay, so a client learns of the deletion); in a room that hides history from
    the reader, no membership entry from before their own latest joining appears either
    (who came, went or changed role then is history too). An entry left out still moves
    the cursor. Delivery is at least once (a client that loses an answer asks again with
    its old cursor) and never skips a committed entry (see ``RoomChange``).
    """
    limit = max(1, min(limit, CHANGES_PAGE_MAX))
    viewable = set(rooms_for_user(user=reader).values_list("pk", flat=True))
    own_removal = Q(user_id=reader.pk, kind=RoomChange.Kind.MEMBER_REMOVED)
    rows = list(
        RoomChange.objects.filter(Q(room_id__in=viewable) | own_removal, pk__gt=after).order_by(
            "pk"
        )[: limit + 1]
    )
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return ChangePage([], False, after)
    memberships = list(
        Membership.objects.filter(user=reader, room_id__in=viewable).values_list(
            "room_id", "visible_from_seq", "room__history_visible"
        )
    )
    visible_from = {room_id: seq for room_id, seq, _ in memberships}
    # A room hiding its history from the reader hides who came, went or changed role
    # before they joined too, as it hides the messages: the membership entries before
    # their own latest joining.
    hiding = [room_id for room_id, seq, shown in memberships if seq > 0 or not shown]
    joined = dict(
        RoomChange.objects.filter(
            kind=RoomChange.Kind.MEMBER_ADDED, user_id=reader.pk, room_id__in=hiding
        )
        .values("room_id")
        .annotate(last=Max("pk"))
        .values_list("room_id", "last")
    )
    message_ids = {row.message_id for row in rows if row.message_id and row.room_id in viewable}
    messages = {
        m.pk: m for m in Message.objects.filter(pk__in=message_ids).select_related("sender")
    }
    reactions = _reactions_of(list(messages))
    items: list[ChangeView] = []
    for row in rows:
        view = None
        if row.message_id is None and row.pk < joined.get(row.room_id, 0):
            continue
        if row.message_id is not None:
            message = messages.get(row.message_id)
            if message is None or message.seq <= visible_from.get(row.room_id, 0):
                continue
            if message.deleted_at is None:  # deleted: the entries stay, the message goes
                view = message_view(
                    reader=reader, message=message, reactions=reactions.get(message.pk, {})
                )
        items.append(
            ChangeView(
                id=row.pk,
                kind=row.kind,
                room_id=row.room_id,
                occurred_at=row.occurred_at,
                message_id=row.message_id,
                user_id=row.user_id,
                role=row.role,
                message=view,
            )
        )
    return ChangePage(items, has_more, rows[-1].pk)
