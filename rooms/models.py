"""Rooms, their members and their (always encrypted) messages.

Membership changes go through ``rooms.services`` only, which also move the
room's keys (``safechat.keyring``) and its object permissions (django-guardian):
a member holds the sealed epoch keys and the permissions of a room exactly while
they are a member.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import F, Q

from safechat.unicode_text import refuse_bidi_controls, validate_label, validate_reaction


class Room(models.Model):
    class Kind(models.TextChoices):
        CHANNEL = "channel", "Channel"
        DIRECT = "direct", "Direct conversation"

    class Visibility(models.TextChoices):
        # Invitation only: nobody outside it learns that it exists.
        PRIVATE = "private", "Private"
        # Anyone in the organisation whom information barriers allow to be with its
        # members finds it (name, topic, member count) and may join it as a member.
        LISTED = "listed", "Listed"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CHANNEL)
    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    # Names others read: no direction control, at least one visible character.
    name = models.CharField(max_length=120, validators=[validate_label])
    topic = models.CharField(max_length=500, blank=True, validators=[refuse_bidi_controls])
    # Whether a member who joins later receives the keys of earlier epochs.
    history_visible = models.BooleanField(default=False)
    # Why the current epoch must encrypt nothing more ("" while it may): someone joined
    # whom it must not reach (history hidden, ``member-joined``), or a member was
    # deactivated who may have kept it (``member-deactivated``). The next message or
    # file key starts a new epoch with this reason (rooms.services.epochs).
    rekey_reason = models.CharField(max_length=20, blank=True, default="", editable=False)
    archived_at = models.DateTimeField(null=True, blank=True)
    # The seq of the room's newest message: posts number their messages 1, 2, 3... under
    # the room's row lock, so a client that sees a number skipped knows it missed one.
    message_seq = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True
    )

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            # A direct conversation's membership is fixed for its life: never listed.
            models.CheckConstraint(
                condition=Q(kind="channel") | Q(visibility="private"),
                name="rooms_room_direct_never_listed",
            ),
        ]
        indexes = [
            # The rooms one may join are a few listed ones among many private ones.
            models.Index(fields=["id"], condition=Q(visibility="listed"), name="rooms_room_listed"),
        ]
        permissions = [
            ("post_message", "Can post messages in the room"),
            ("upload_file", "Can share files in the room"),
            ("manage_members", "Can add and remove members"),
            ("manage_room", "Can change the room's settings and archive it"),
        ]

    def __str__(self) -> str:
        # What the admin's lists, choices and breadcrumbs show: the name people know it
        # by, with its id to tell two rooms of one name apart.
        return f"{self.name} (#{self.pk})" if self.name else f"room {self.pk}"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    @property
    def is_listed(self) -> bool:
        return self.visibility == Room.Visibility.LISTED


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MODERATOR = "moderator", "Moderator"
        MEMBER = "member", "Member"
        READ_ONLY = "read_only", "Read-only"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)
    # The newest message id this member has read (read marker). Starts at the newest
    # message when they join: unread counts start at the moment of joining.
    last_read_message_id = models.BigIntegerField(default=0)
    # In a room that hides history, the room's message_seq when they joined: they see
    # only messages numbered after it (0: the whole history). A member removed and added
    # again gets a new row, so nothing posted while away is shown either.
    visible_from_seq = models.PositiveBigIntegerField(default=0)

    class Mute(models.TextChoices):
        # Every message counts as unread and shows as such; mentions and direct
        # messages notify (desktop notifications are opt-in per browser).
        OFF = "off", "Not muted"
        # Unread is still counted but shown muted, and nothing notifies but a mention.
        MESSAGES = "messages", "Muted, except mentions"
        # As MESSAGES, and mentions do not notify either ("mute all").
        ALL = "all", "Muted, mentions too"

    # The member's own choice for this room; it changes what their clients show, never
    # what they may read (``membership_mute_set``).
    mute = models.CharField(max_length=16, choices=Mute.choices, default=Mute.OFF)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="rooms_membership_unique"),
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} in room {self.room_id}"


class RoomInvitation(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="invitations")
    invitee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="room_invitations"
    )
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    role = models.CharField(
        max_length=16, choices=Membership.Role.choices, default=Membership.Role.MEMBER
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "invitee"], name="rooms_invitation_unique"),
        ]

    def __str__(self) -> str:
        return f"invitation of user {self.invitee_id} to room {self.room_id}"


class Message(models.Model):
    """A message; its text exists only as ``ciphertext`` under a room epoch key.

    ``uid`` is chosen before encryption and bound into the associated data with the
    room, epoch, sender and revision, so a ciphertext copied to another row, room
    or revision fails to decrypt.
    """

    uid = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="replies"
    )
    seq = models.PositiveBigIntegerField(editable=False)  # 1, 2, 3... within the room
    epoch = models.PositiveIntegerField()
    revision = models.PositiveIntegerField(default=0)
    ciphertext = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    # Hidden from members; kept (encrypted) for compliance until retention.
    deleted_at = models.DateTimeField(null=True, blank=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The sender's idempotency key (socket ``client_id``, API ``Idempotency-Key``): a
    # repeated post with it returns this message (within SAFECHAT_IDEMPOTENCY_HOURS).
    # NULL, not "", for "no key": the unique constraint below skips NULLs.
    client_key = models.CharField(max_length=64, null=True, blank=True, editable=False)  # noqa: DJ001
    # What was posted under ``client_key``: a keyed SHA-256 of the text and the parent id
    # (never the text), so a repeat with another body is refused rather than answered
    # with this message. Cleared with the key.
    client_fingerprint = models.CharField(max_length=64, blank=True, default="", editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["room", "-id"], name="rooms_message_room_recent"),
            # Retention reads an epoch's messages oldest first in windows (keyset on
            # sent time and id), and asks whether anything is left under an epoch.
            models.Index(
                fields=["room", "epoch", "created_at", "id"], name="rooms_message_room_epoch_age"
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="rooms_message_room_seq_unique"),
            # Two identical posts at the same instant store one message.
            models.UniqueConstraint(
                fields=["sender", "client_key"],
                condition=Q(client_key__isnull=False),
                name="rooms_message_client_key_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.pk}"


class MessageRevision(models.Model):
    """An earlier text of an edited message, still encrypted as it was.

    ``room`` is the message's room, kept on the row so that "is anything left under this
    epoch of the room" (before the epoch key is destroyed) is one index probe.
    """

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="revisions")
    # Indexed with the epoch below (the index on the room alone would be a duplicate).
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+", db_index=False)
    revision = models.PositiveIntegerField()
    epoch = models.PositiveIntegerField()
    ciphertext = models.BinaryField()
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["room", "epoch"], name="rooms_revision_room_epoch")]
        constraints = [
            models.UniqueConstraint(fields=["message", "revision"], name="rooms_revision_unique"),
        ]

    def __str__(self) -> str:
        return f"revision {self.revision} of message {self.message_id}"


class Reaction(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    emoji = models.CharField(max_length=16, validators=[validate_reaction])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="rooms_reaction_unique"
            ),
        ]

    def __str__(self) -> str:
        return f"reaction on message {self.message_id}"


class Mention(models.Model):
    """A member named in a message; they are notified. Holds no text."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="mentions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="mentions"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["message", "user"], name="rooms_mention_unique"),
        ]

    def __str__(self) -> str:
        return f"mention of user {self.user_id} in message {self.message_id}"


class InformationBarrier(models.Model):
    """Members of ``group_a`` and of ``group_b`` may not share a room (an ethical wall)."""

    group_a = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    group_b = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            # Stored with the smaller group id first, so (a, b) and (b, a) are one barrier.
            models.CheckConstraint(
                condition=Q(group_a__lt=F("group_b")), name="rooms_barrier_ordered_pair"
            ),
            models.UniqueConstraint(fields=["group_a", "group_b"], name="rooms_barrier_unique"),
        ]

    def __str__(self) -> str:
        # What the admin's lists, messages and breadcrumbs show: the groups by name.
        return f"barrier between “{self.group_a.name}” and “{self.group_b.name}”"


class RoomChange(models.Model):
    """One entry of the change feed: a message posted, edited or deleted, a membership
    added, removed or changed. Append-only, written by the service that made the change,
    in its transaction (``rooms.services._changes.room_change_append``).

    ``id`` is the feed's cursor: it is allocated under the audit chain's lock, which is
    held until the commit, so ids become visible in the order they were given and a
    reader that has seen id N has seen every committed id below it. No foreign keys: an
    insert after the audit append must lock nothing (docs/architecture.md), and the
    entry outlives what it names (a reader re-derives access per entry).
    """

    class Kind(models.TextChoices):
        MESSAGE_CREATED = "message.created"
        MESSAGE_EDITED = "message.edited"
        MESSAGE_DELETED = "message.deleted"
        MEMBER_ADDED = "member.added"
        MEMBER_REMOVED = "member.removed"
        MEMBER_ROLE_CHANGED = "member.role_changed"

    room_id = models.BigIntegerField()
    kind = models.CharField(max_length=32, choices=Kind.choices)
    message_id = models.BigIntegerField(null=True, blank=True)
    # The member a membership change is about.
    user_id = models.BigIntegerField(null=True, blank=True)
    role = models.CharField(max_length=16, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user_id", "id"], name="roomchange_user_id")]

    def __str__(self) -> str:
        return f"{self.kind} in room {self.room_id} (#{self.pk})"
