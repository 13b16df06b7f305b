"""The one wire format of a message: the JSON the API answers and the socket sends.

A selector returns a message as data (``rooms.selectors.MessageView``: text decrypted
for its reader, never HTML); this module turns it into :class:`WireMessage`, the
object every client sees, in the REST API (``rooms.api``, documented by
``MessageOutput``), in socket frames (``message.new``, ``message.edited``,
``message.reactions``, and each message of a ``sync``) and, rendered as HTML, in the
portal's page (:class:`RenderedMessage`). Rendering Markdown to sanitised HTML
(``rooms.markdown``) happens here and nowhere else; a socket fanning a new message out
shares one rendering per process (``rooms.render_cache``).

A new message crosses the channel layer sealed (:func:`message_sealed`: its ciphertext
and what binds it, never text), and each reader's socket makes it a view again
(:func:`message_view_sealed`) with the text it opened.

A new field of a message: add it to ``MessageView`` (if it is new data), and to
:class:`WireMessage` and :func:`message_json` here. The API's schema (``MessageOutput``)
is derived from :class:`WireMessage`; the portal reads the field in ``messageItem``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Annotated, TypedDict

from django.urls import reverse

from accounts.models import User
from rooms import render_cache
from rooms.attachments import AttachmentView
from rooms.markdown import MentionTarget, render_markdown
from rooms.models import Message
from rooms.selectors import TEXT_OK, Mentioned, MessageView, TextStatus
from safechat.events import MentionedUser, MessageNew, SealedMessage


@dataclass(frozen=True)
class Doc:
    """What a wire field means, for the API's schema: ``rooms.api.serializers`` builds
    ``MessageOutput`` from :class:`WireMessage`'s annotations, so the schema cannot drift
    from what is sent. ``date_time``: the string is an ISO 8601 instant."""

    text: str = ""
    date_time: bool = False


class WireAttachment(TypedDict):
    """The file a message shares, as its reader sees it (name and type opened with their
    key: sealed at rest). ``download_url`` and ``preview_url`` need the reader's own
    credentials, like every API call."""

    id: Annotated[str, Doc("the file's id (a UUID), as in /api/v1/rooms/<id>/files/")]
    name: str
    size: Annotated[int, Doc("bytes")]
    content_type: str
    sha256: Annotated[str, Doc("SHA-256 of the content, hex: compare it to check the file")]
    uploader_id: int
    uploader: str
    download_url: str
    preview_url: Annotated[str | None, Doc("an image preview (at most 640 px), or null")]


class WireMessage(TypedDict):
    """A message as a client sees it: in the API, in socket frames and in the portal."""

    id: int
    room_id: int
    seq: Annotated[int, Doc("1, 2, 3... within the room: a number skipped is a message missed")]
    sender_id: int
    sender: Annotated[str, Doc("the sender's username")]
    sender_name: Annotated[
        str, Doc("the sender's display name (full name; the username when they have none)")
    ]
    parent_id: int | None
    # ISO 8601, UTC with a "Z" suffix (as DRF's DateTimeField writes it)
    created_at: Annotated[str, Doc(date_time=True)]
    edited_at: Annotated[str | None, Doc(date_time=True)]
    text: Annotated[str | None, Doc("null unless text_status is ok: see text_status")]
    text_status: Annotated[
        TextStatus,
        Doc(
            "ok: text holds the message; unavailable: this reader holds no key for it "
            "(destroyed by retention, or from before they joined a room that hides "
            "history); integrity_failure: the stored message or its key failed its "
            "authenticity check (tampering or corruption, reported to the security team)"
        ),
    ]
    html: Annotated[str | None, Doc("sanitised Markdown rendering")]
    # emoji -> the ids of who reacted, in order
    reactions: dict[str, list[int]]
    mentions: Annotated[
        list[int],
        Doc(
            "the ids of the members the message names (@username) and notified; html marks "
            'each up as <span class="mention" data-user-id="id">'
        ),
    ]
    attachment: Annotated[
        WireAttachment | None, Doc("the file this message shares (null: a text message)")
    ]


@dataclass(frozen=True, kw_only=True)
class RenderedMessage(MessageView):
    """A message view with its sanitised HTML: what the portal's page shows."""

    html: str | None

    @property
    def mention_ids(self) -> frozenset[int]:
        """The ids of the members it names."""
        return frozenset(m.user_id for m in self.mentions)


def mention_targets(mentions: tuple[Mentioned, ...]) -> dict[str, MentionTarget]:
    """What ``rooms.markdown`` marks up as mentions: canonical username -> the member."""
    return {m.username: MentionTarget(m.user_id, m.name) for m in mentions}


def message_html(text: str | None, mentions: tuple[Mentioned, ...] = ()) -> str | None:
    """``text`` rendered as sanitised HTML (``rooms.markdown``), the members it names
    (``mentions``) marked up; None for no text."""
    if text is None:
        return None
    return render_markdown(text, mentions=mention_targets(mentions))


def message_rendered(view: MessageView, *, reader_id: int | None = None) -> RenderedMessage:
    """``view`` with its HTML, for a server-rendered page; the mentions of ``reader_id``
    (the page's reader) carry the class ``mention-me`` too, as the client adds it to a
    message it receives (the wire's HTML is the same for every reader)."""
    data = {f.name: getattr(view, f.name) for f in fields(MessageView)}
    html = message_html(view.text, view.mentions)
    if (
        html is not None
        and reader_id is not None
        and reader_id in {m.user_id for m in view.mentions}
    ):
        # Safe on sanitised output: the sanitiser writes this exact opening tag for a
        # mention, and a "<" typed by anyone is escaped, so only a real mention matches.
        tail = f' data-user-id="{int(reader_id)}"'
        html = html.replace(
            f'<span class="mention"{tail}', f'<span class="mention mention-me"{tail}'
        )
    return RenderedMessage(**data, html=html)


def _iso(moment: datetime) -> str:
    # The same text DRF's DateTimeField gives with USE_TZ (UTC, "Z" suffix).
    text = moment.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def message_json(view: MessageView, *, html: str | None = None) -> WireMessage:
    """``view`` on the wire. ``html``: its rendering when the caller has it already (the
    socket's shared render cache); rendered here otherwise. Built directly, not through
    DRF: this runs once per recipient of every message, where the serializer machinery
    costs more than everything else (a test keeps it identical to ``MessageOutput``, the
    serializer derived from :class:`WireMessage`).
    """
    if view.text is None:
        html = None
    elif html is None:
        html = message_html(view.text, view.mentions)
    return {
        "id": view.id,
        "room_id": view.room_id,
        "seq": view.seq,
        "sender_id": view.sender_id,
        "sender": view.sender,
        "sender_name": view.sender_name,
        "parent_id": view.parent_id,
        "created_at": _iso(view.created_at),
        "edited_at": _iso(view.edited_at) if view.edited_at is not None else None,
        "text": view.text,
        "text_status": view.text_status,
        "html": html,
        "reactions": {emoji: list(users) for emoji, users in view.reactions.items()},
        "mentions": [m.user_id for m in view.mentions],
        "attachment": attachment_json(view.attachment) if view.attachment is not None else None,
    }


def attachment_json(attachment: AttachmentView) -> WireAttachment:
    """A message's file on the wire, with the URLs its reader fetches it from."""
    args = [attachment.room_id, attachment.uid]
    return {
        "id": attachment.uid,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "sha256": attachment.sha256,
        "uploader_id": attachment.uploader_id,
        "uploader": attachment.uploader,
        # Named routes of the files app (above rooms in the layers: reversed, not imported).
        "download_url": reverse("api-file-download", args=args),
        "preview_url": reverse("api-file-preview", args=args) if attachment.has_preview else None,
    }


async def message_json_shared(view: MessageView, *, epoch: int, revision: int) -> WireMessage:
    """``view`` on the wire, its HTML rendered once per process and shared by every reader
    there while recent (``rooms.render_cache``: kept like a key, dropped on an edit, a
    deletion or a shred). For a new message fanned out to many sockets, on the event loop.
    """
    if view.text is None:
        return message_json(view)
    html = await render_cache.rendered_once(
        message_id=view.id,
        revision=revision,
        room_id=view.room_id,
        epoch=epoch,
        text=view.text,
        mentions=mention_targets(view.mentions),
    )
    return message_json(view, html=html)


# --- the sealed form: a new message on the channel layer --------------------------------
def message_sealed(
    *, message: Message, sender: User, mentioned: list[User], attachment: bool = False
) -> SealedMessage:
    """``message`` as stored, for ``message.new``: every subscriber opens it with its own
    user's key copy, so a message posted to a room of N readers costs no database read
    per reader; a reader without the epoch key (removed: removal starts a new epoch)
    cannot open it. ``mentioned``: the members it names (its ``Mention`` rows).
    ``attachment``: the message shares a file, which each reader's socket opens from the
    database (its name is sealed under the file's own key)."""
    named: list[MentionedUser] = [
        {"user_id": u.pk, "username": u.get_username(), "name": u.display_name()}
        for u in sorted(mentioned, key=lambda u: u.get_username())
    ]
    return {
        "uid": str(message.uid),
        "seq": message.seq,
        "epoch": message.epoch,
        "revision": message.revision,
        "sender_id": message.sender_id,
        "sender": sender.get_username(),
        "sender_name": sender.display_name(),
        "mentions": named,
        "parent_id": message.parent_id,
        "created_at": message.created_at.isoformat(),
        "ciphertext": bytes(message.ciphertext),
        "attachment": attachment,
    }


def message_view_sealed(
    event: MessageNew, *, text: str | None, text_status: TextStatus = TEXT_OK
) -> MessageView:
    """The view of a ``message.new`` for a reader who opened it (``text``), or could not
    (``text`` None, and why in ``text_status``). A new message has no edit or reaction."""
    sealed = event["sealed"]
    return MessageView(
        id=int(event["message_id"]),
        room_id=int(event["room_id"]),
        seq=int(sealed["seq"]),
        sender_id=int(sealed["sender_id"]),
        sender=str(sealed["sender"]),
        sender_name=str(sealed["sender_name"]),
        parent_id=sealed["parent_id"],
        created_at=datetime.fromisoformat(sealed["created_at"]),
        edited_at=None,
        deleted=False,
        text=text,
        reactions={},
        text_status=text_status,
        mentions=tuple(
            Mentioned(int(m["user_id"]), str(m["username"]), str(m["name"]))
            for m in sealed["mentions"]
        ),
    )
