"""The chat portal: one page, plus form endpoints for room settings and membership.

Thin by design: selectors read (scoped to the user; a room they cannot view is a
404, whether or not it exists), services write (they check permissions, audit and
broadcast). Every route needs a verified second factor, which
``accounts.middleware.SecondFactorRequiredMiddleware`` enforces before any view runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import etag, require_GET, require_POST

from accounts.models import User
from accounts.roles import MANAGE_USERS, Role
from accounts.selectors import person_active_get, person_get
from rooms import forms, reaction_picker, selectors, services
from rooms import permissions as perms
from rooms.attachments import scan_waiting_of
from rooms.errors import RateLimitedError, RoomHiddenError, UnreachableError
from rooms.models import Membership, Room
from rooms.presence import OFFLINE, presence_of
from rooms.selectors import RoomLabel, label_json
from rooms.services.rooms import MAX_DIRECT_PARTICIPANTS
from rooms.wire import RenderedMessage, message_rendered
from safechat.events import client_names
from safechat.keyring.errors import IntegrityFailure
from safechat.middleware import INTEGRITY_FAILURE_MESSAGE
from safechat.websocket_limits import WEBSOCKET_MAX_FRAME_BYTES as SOCKET_FRAME_MAX_BYTES

PAGE_SIZE = 50
# Roles a manager may hand out; only owners make owners (the service enforces it too).
# Only owners change owners and moderators: a moderator picks between these.
MODERATOR_ROLES = [
    c
    for c in Membership.Role.choices
    if c[0] not in (Membership.Role.OWNER, Membership.Role.MODERATOR)
]


def _user(request: HttpRequest) -> User:
    user = request.user
    if not isinstance(user, User):  # the second-factor middleware lets only verified users in
        raise PermissionDenied
    return user


@dataclass
class Thread:
    """A message of the page with the replies to it that are in the page too."""

    message: RenderedMessage
    replies: list[RenderedMessage] = field(default_factory=list)
    # A reply whose thread started before this page: shown on its own, marked as a reply.
    orphan: bool = False


def _threads(page: list[RenderedMessage]) -> list[Thread]:
    """Oldest first; replies under their thread's first message (threads are one level deep)."""
    threads: dict[int, Thread] = {}
    ordered: list[Thread] = []
    for message in sorted(page, key=lambda m: m.id):
        parent = threads.get(message.parent_id) if message.parent_id else None
        if parent is not None:
            parent.replies.append(message)
            continue
        thread = Thread(message=message, orphan=message.parent_id is not None)
        threads[message.id] = thread
        ordered.append(thread)
    return ordered


def _selected_room(
    request: HttpRequest, user: User, rooms: list[tuple[Room, RoomLabel]]
) -> tuple[Room, RoomLabel] | tuple[None, None]:
    wanted = request.GET.get("room")
    if wanted:
        room = selectors.room_get_for_user(user=user, room_id=wanted)  # Http404 otherwise
        # The annotated instance from the list carries the unread count.
        listed = next((row for row in rooms if row[0].pk == room.pk), None)
        return listed or (room, selectors.room_label(viewer=user, room=room))
    live = [row for row in rooms if not row[0].is_archived]
    return (live or rooms)[0] if rooms else (None, None)


@never_cache
@require_GET
def chat(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    rooms = selectors.room_list_labelled(user=user)
    room, label = _selected_room(request, user, rooms)
    # Cursors before the page: whatever is posted meanwhile comes again through `sync`.
    cursors = selectors.room_last_messages(user=user)
    context: dict[str, Any] = {
        "rooms": rooms,
        "room": room,
        "label": label,
        "may": {
            "create_rooms": perms.may_create_rooms(user=user),
            "start_conversations": perms.may_start_conversations(user=user),
            # A security admin who cannot create rooms is shown how to get some: invite
            # people and make one of them a room admin (the empty chat's hint).
            "invite_people": user.has_perm(MANAGE_USERS),
        },
        "room_admin_label": Role.ROOM_ADMIN.label,
    }
    config: dict[str, Any] = {
        "user": {"id": user.pk, "username": user.get_username(), "name": user.display_name()},
        "room": None,
        # room id -> [id, seq] of the newest message
        "cursors": {str(pk): list(last) for pk, last in cursors.items()},
        "urls": {
            "portal": reverse("rooms:chat"),
            "api": "/api/v1/",
            "socket": "/ws/",
            "emoji": reverse("rooms:emoji"),
            "conversation_new": reverse("rooms:conversation-new"),
        },
        # The profile card's "Message" (a direct conversation), for whoever may start one.
        "may_message": perms.may_start_conversations(user=user),
        # The longest message text (UTF-8 bytes, services.MAX_MESSAGE_BYTES) and the
        # longest frame the server reads (the ASGI server's limit): the composer counts
        # against both, so a post too long is refused with its reason before it is sent.
        "limits": {
            "message_bytes": services.MAX_MESSAGE_BYTES,
            "frame_bytes": SOCKET_FRAME_MAX_BYTES,
        },
        # The reaction picker's first row; the searchable list comes from urls.emoji.
        "reactions": {"quick": reaction_picker.quick_reactions()},
    }
    if room is not None and label is not None:
        page = [
            message_rendered(m, reader_id=user.pk)
            for m in selectors.message_page(reader=user, room=room, limit=PAGE_SIZE)
        ]
        if page and page[0].id > cursors.get(room.pk, (0, 0))[0]:
            config["cursors"][str(room.pk)] = [page[0].id, page[0].seq]
        members = list(selectors.room_members(user=user, room=room))
        granted = perms.room_permissions_of(room=room, user=user)
        me = next((m for m in members if m.user_id == user.pk), None)
        # An information barrier between the reader and another member: the room stays
        # readable, and every write is refused (services.require_unseparated) until a
        # security admin resolves it; the composer says so instead of offering to send.
        walled = (
            perms.POST in granted
            and not room.is_archived
            and services.room_barrier_separating(room_id=room.pk, user_id=user.pk) is not None
        )
        can = {
            "post": perms.POST in granted and not room.is_archived and not walled,
            "walled": walled,
            "upload": perms.UPLOAD in granted and not room.is_archived,
            "manage_members": perms.MANAGE_MEMBERS in granted and not room.is_archived,
            "manage_room": perms.MANAGE_ROOM in granted and not room.is_archived,
            # A direct conversation's membership and roles are fixed: "add people" is a
            # new room, and nobody is re-roled, removed or leaves.
            "add_members": perms.MANAGE_MEMBERS in granted
            and not room.is_archived
            and room.kind != Room.Kind.DIRECT,
            "manage_people": perms.MANAGE_MEMBERS in granted
            and not room.is_archived
            and room.kind != Room.Kind.DIRECT,
            "leave": room.kind != Room.Kind.DIRECT,
            # A direct conversation is never listed.
            "list": perms.MANAGE_ROOM in granted
            and not room.is_archived
            and room.kind == Room.Kind.CHANNEL,
            "unarchive": room.is_archived
            and (perms.MANAGE_ROOM in granted or user.has_perm("accounts.create_room")),
        }
        waiting = scan_waiting_of(room.pk)
        context.update(
            scan_waiting=waiting,
            threads=_threads(page),
            older=page[-1].id if len(page) == PAGE_SIZE else None,
            members=members,
            can=can,
            settings_form=forms.RoomSettingsForm(
                initial={
                    "name": room.name,
                    "topic": room.topic,
                    "history_visible": room.history_visible,
                    "listed": room.is_listed,
                }
            ),
            mute_form=forms.RoomMuteForm(
                initial={"mute": me.mute if me else Membership.Mute.OFF}, auto_id="room-%s"
            ),
            role_choices=(Membership.Role.choices if can["manage_room"] else MODERATOR_ROLES),
        )
        # Files wait for a scanner that cannot scan now: how many of this room's.
        config["scan"] = {"ready": waiting.scanner_ready, "waiting": waiting.files}
        config["upload"] = {
            # The tus creation URL (files.asgi serves it); a route of the files app,
            # reversed by name (rooms sits below files in the layers).
            "endpoint": reverse("api-uploads", args=[room.pk]),
            "max_bytes": settings.SAFECHAT_FILE_MAX_BYTES,
            # The PATCH size (SAFECHAT_UPLOAD_CHUNK_BYTES, 32 MiB): each PATCH costs a
            # request's fixed work, and a cut one loses nothing (the server keeps what
            # arrived); a 100 MiB file is 4 segments (files.services.uploads.MAX_SEGMENTS).
            "chunk_bytes": settings.SAFECHAT_UPLOAD_CHUNK_BYTES,
        }
        config["room"] = {
            "id": room.pk,
            # What the room is called for this person (selectors.room_labels), as the
            # API's room objects carry it.
            "label": label_json(label),
            "archived": room.is_archived,
            "last_read": me.last_read_message_id if me else 0,
            "can": can,
            "role_choices": context["role_choices"],
            # Every role's label: a moderator's choices leave owners and moderators out,
            # and the member list names them too.
            "role_labels": dict(Membership.Role.choices),
            "members": [
                {
                    "user_id": m.user_id,
                    "username": m.user.get_username(),
                    "name": m.user.display_name(),
                    "role": m.role,
                }
                for m in members
            ],
            # Own messages' text, so "Edit" can fill the composer without another request.
            "own_texts": {
                str(m.id): m.text for m in page if m.sender_id == user.pk and m.text is not None
            },
        }
    context["config"] = config
    # The socket's event and frame names, which the chat client (static/safechat/chat/)
    # keys its handlers by.
    context["socket_names"] = client_names()
    return render(request, "rooms/chat.html", context)


# --- Form endpoints: settings and membership, for owners and moderators ----------------
def _back(room: Room | None) -> HttpResponseRedirect:
    url = reverse("rooms:chat")
    return HttpResponseRedirect(f"{url}?room={room.pk}" if room is not None else url)


def _sentence(text: str) -> str:
    text = text.strip() or "This is not allowed"
    return text[0].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _can_manage(user: User, room: Room) -> bool:
    granted = perms.room_permissions_of(room=room, user=user)
    return bool(granted & {perms.MANAGE_MEMBERS, perms.MANAGE_ROOM})


def _forbidden(request: HttpRequest, room: Room, reason: str) -> HttpResponse:
    label = selectors.room_label(viewer=_user(request), room=room)
    return render(
        request,
        "rooms/forbidden.html",
        {"room": room, "label": label, "reason": _sentence(reason)},
        status=403,
    )


def _form_errors(form: Form) -> str:
    parts = []
    for name, errors in form.errors.items():
        label = form.fields[name].label or name.replace("_", " ").capitalize()
        parts.append(f"{label}: {' '.join(str(e) for e in errors)}")
    return " ".join(parts) or "Check the form and try again."


def _apply(
    request: HttpRequest,
    *,
    room: Room,
    action: Callable[[], object],
    success: str,
    then: Room | None = None,
) -> HttpResponse:
    """Run one service call; refusals, invalid input and stored key data that failed its
    integrity check (reported where it was raised) become a page or a message."""
    actor = _user(request)
    try:
        action()
    except PermissionDenied as exc:  # audited by the service
        if not _can_manage(actor, room):
            return _forbidden(request, room, str(exc))
        # A manager hit a rule (only owners make owners, a barrier, an archived room).
        messages.error(request, _sentence(str(exc)))
        return _back(room)
    except ValidationError as exc:
        messages.error(request, _sentence("; ".join(exc.messages)))
        return _back(room)
    except IntegrityFailure:  # the service's transaction rolled back: nothing changed
        messages.error(request, INTEGRITY_FAILURE_MESSAGE)
        return _back(room)
    except RateLimitedError as exc:
        messages.error(request, _sentence(str(exc)))
        return _back(room)
    messages.success(request, success)
    return _back(then)


def _refuse_unless_manager(request: HttpRequest, room: Room, message: str) -> HttpResponse:
    """A bad form: a non-manager learns nothing (not even whether a name exists), and is
    refused on the record (``room_manage_require``)."""
    try:
        services.room_manage_require(actor=_user(request), room=room)
    except PermissionDenied as exc:
        return _forbidden(request, room, str(exc))
    messages.error(request, message)
    return _back(room)


@require_POST
def room_settings(request: HttpRequest, room_id: int) -> HttpResponse:
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    form = forms.RoomSettingsForm(request.POST)
    if not form.is_valid():
        return _refuse_unless_manager(request, room, _form_errors(form))
    changes = dict(form.cleaned_data)
    listed = changes.pop("listed")
    # The box is not offered in a direct conversation, which is never listed.
    visibility = forms.visibility_of(listed) if room.kind == Room.Kind.CHANNEL else None
    return _apply(
        request,
        room=room,
        action=lambda: services.room_update(
            actor=actor, room=room, visibility=visibility, **changes
        ),
        success="Room settings saved.",
        then=room,
    )


MUTED = {
    Membership.Mute.OFF: "Room unmuted: it notifies you again.",
    Membership.Mute.MESSAGES: "Room muted: only mentions of you notify you.",
    Membership.Mute.ALL: "Room muted, mentions of you too.",
}


@require_POST
def room_mute(request: HttpRequest, room_id: int) -> HttpResponse:
    """How the room notifies the member (``services.membership_mute_set``): their own
    setting, so any member may change it; the chat client does it without a reload."""
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    form = forms.RoomMuteForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back(room)
    mute = form.cleaned_data["mute"]
    return _apply(
        request,
        room=room,
        action=lambda: services.membership_mute_set(actor=actor, room=room, mute=mute),
        success=MUTED[Membership.Mute(mute)],
        then=room,
    )


@require_POST
def room_archive(request: HttpRequest, room_id: int) -> HttpResponse:
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    return _apply(
        request,
        room=room,
        action=lambda: services.room_archive(actor=actor, room=room),
        success="Room archived: it stays readable and nobody can post any more.",
        then=room,
    )


@require_POST
def room_unarchive(request: HttpRequest, room_id: int) -> HttpResponse:
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    return _apply(
        request,
        room=room,
        action=lambda: services.room_unarchive(actor=actor, room=room),
        success="Room unarchived: members with the right can post again.",
        then=room,
    )


@require_POST
def member_add(request: HttpRequest, room_id: int) -> HttpResponse:
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    form = forms.MemberAddForm(request.POST)
    if not form.is_valid():
        return _refuse_unless_manager(request, room, _form_errors(form))
    username = form.cleaned_data["username"]  # "@Carol" is "carol" (MemberAddForm)
    # One answer for nobody by that name, an inactive account, a compliance officer and
    # someone a barrier keeps out: the manager learns nothing of roles or barriers.
    not_addable = f"No one called “{username}” can be added."
    # Nobody by that name: the service refuses someone without the right (audited)
    # before it says so, so a name tells a non-manager nothing.
    person = person_active_get(username=username)
    if person is None and _can_manage(actor, room):
        messages.error(request, not_addable)
        return _back(room)
    role = form.cleaned_data["role"]

    def add() -> Membership:
        try:
            membership, created = services.membership_add(
                actor=actor, room=room, user=person, role=role
            )
        except UnreachableError:  # recorded by the service as what it is
            raise ValidationError(not_addable) from None
        if not created:  # nothing was written: say so rather than "added"
            raise ValidationError(f"{username} is a member of this room already.")
        return membership

    return _apply(
        request,
        room=room,
        action=add,
        success=f"{username} was added as {Membership.Role(role).label.lower()}.",
        then=room,
    )


@require_POST
def member_remove(request: HttpRequest, room_id: int, user_id: int) -> HttpResponse:
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    member = person_get(user_id=user_id)
    leaving = member is not None and member.pk == actor.pk
    name = member.get_username() if member is not None else "Nobody"
    return _apply(
        request,
        room=room,
        action=lambda: services.membership_remove(actor=actor, room=room, member=member),
        success="You left the room." if leaving else f"{name} was removed.",
        # Someone who left cannot view the room any more: back to the room list.
        then=None if leaving else room,
    )


@require_POST
def member_role(request: HttpRequest, room_id: int, user_id: int) -> HttpResponse:
    actor = _user(request)
    room = selectors.room_get_for_user(user=actor, room_id=room_id)
    member = person_get(user_id=user_id)
    form = forms.MemberRoleForm(request.POST)
    if not form.is_valid():
        return _refuse_unless_manager(request, room, _form_errors(form))
    role = form.cleaned_data["role"]
    name = member.get_username() if member is not None else "Nobody"
    return _apply(
        request,
        room=room,
        action=lambda: services.membership_role_change(
            actor=actor, room=room, member=member, role=role
        ),
        success=f"{name} is now {Membership.Role(role).label.lower()}.",
        then=room,
    )


# --- New rooms and conversations ---------------------------------------------------------
@never_cache
def room_new(request: HttpRequest) -> HttpResponse:
    """A new private room, owned by its creator (``services.room_create`` decides who may)."""
    actor = _user(request)
    allowed = perms.may_create_rooms(user=actor)
    form = forms.RoomCreateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                room = services.room_create(
                    actor=actor,
                    name=form.cleaned_data["name"],
                    topic=form.cleaned_data["topic"],
                    history_visible=form.cleaned_data["history_visible"],
                    visibility=forms.visibility_of(form.cleaned_data["listed"]),
                )
            except PermissionDenied as exc:  # audited by the service
                return render(
                    request,
                    "rooms/room_new.html",
                    {"allowed": False, "reason": _sentence(str(exc))},
                    status=403,
                )
            except ValidationError as exc:
                _form_error(form, exc)
            except RateLimitedError as exc:
                form.add_error(None, _sentence(str(exc)))
            else:
                label = selectors.room_label(viewer=actor, room=room)
                messages.success(
                    request, f"Room “{label.full}” was created. Add people to it below."
                )
                return _back(room)
        status = 400
    else:
        status = 200
    return render(request, "rooms/room_new.html", {"form": form, "allowed": allowed}, status=status)


@never_cache
def conversation_new(request: HttpRequest) -> HttpResponse:
    """Start a direct conversation with people picked from those one may reach.

    One form, posted for both of its buttons so the picks survive a search: "Search"
    lists people again (nothing is written), "Start conversation" calls
    ``services.direct_conversation_create``, which decides who may take part.
    """
    actor = _user(request)
    data = request.POST if request.method == "POST" else None
    form = forms.ConversationForm(data)
    query = (request.POST.get("q") or request.GET.get("q") or "").strip()[:150]
    picked: list[int] = []
    status = 200
    if data is not None:
        starting = request.POST.get("do") == "start"
        if form.is_valid():
            picked = form.cleaned_data["participants"]
            if starting:
                participants = [person_active_get(user_id=pk) for pk in picked]
                try:
                    room = services.direct_conversation_create(
                        actor=actor, participants=participants
                    )
                except UnreachableError as exc:  # audited; answered as an unknown id is
                    form.add_error(None, _sentence(str(exc)))
                    status = 400
                except PermissionDenied as exc:  # audited by the service
                    form.add_error(None, _sentence(str(exc)))
                    status = 403
                except ValidationError as exc:
                    _form_error(form, exc)
                    status = 400
                except RateLimitedError as exc:
                    form.add_error(None, _sentence(str(exc)))
                    status = 429
                else:
                    return _back(room)
        elif starting:
            status = 400
        else:
            form = forms.ConversationForm()  # a search with nothing picked is no error
    found = selectors.people_reachable(user=actor, query=query)
    chosen = selectors.people_reachable_by_ids(user=actor, ids=picked)
    context = {
        "form": form,
        "query": query,
        "chosen": chosen,
        "found": [p for p in found if p.pk not in {c.pk for c in chosen}],
        "allowed": perms.may_start_conversations(user=actor),
        "max_others": MAX_DIRECT_PARTICIPANTS - 1,
    }
    return render(request, "rooms/conversation_new.html", context, status=status)


def _form_error(form: Form, exc: ValidationError) -> None:
    """A service's refusal on the form: beside the field it names (which then renders
    ``aria-invalid`` and ``aria-describedby`` its error), else above the form."""
    if hasattr(exc, "error_dict"):
        for name, errors in exc.error_dict.items():
            field = name if name in form.fields else None
            for error in errors:
                form.add_error(field, _sentence("; ".join(error.messages)))
        return
    form.add_error(None, _sentence("; ".join(exc.messages)))


# --- Browsing and joining listed rooms ------------------------------------------------------
@never_cache
@require_GET
def rooms_browse(request: HttpRequest) -> HttpResponse:
    """The listed rooms one may join (``selectors.rooms_joinable``: not archived, not
    already in, no information barrier between them and a member; none for a compliance
    officer), each with a Join button."""
    actor = _user(request)
    query = (request.GET.get("q") or "").strip()[:120]
    found = list(
        selectors.rooms_joinable(user=actor, query=query).order_by("name", "pk")[
            : selectors.JOINABLE_PAGE_MAX
        ]
    )
    qualifiers = selectors.joinable_qualifiers(user=actor, rooms=found)
    context = {
        "query": query,
        "rooms": [(room, qualifiers.get(room.pk, "")) for room in found],
        "limit": selectors.JOINABLE_PAGE_MAX,
        "may_join": perms.may_start_conversations(user=actor),
    }
    return render(request, "rooms/browse.html", context)


@require_POST
def room_join(request: HttpRequest, room_id: int) -> HttpResponse:
    """Join a listed room (``services.room_join``). A room one may not know of (private,
    a direct conversation, behind a barrier, or any for a compliance officer) is a 404,
    exactly as an id naming no room; the service has recorded the refusal."""
    actor = _user(request)
    room = selectors.room_for_join(room_id=room_id)
    browse = HttpResponseRedirect(reverse("rooms:browse"))
    try:
        services.room_join(actor=actor, room=room)
    except RoomHiddenError:
        raise Http404("no such room") from None
    except PermissionDenied as exc:  # an archived room: audited by the service
        messages.error(request, _sentence(str(exc)))
        return browse
    except ValidationError as exc:
        messages.error(request, _sentence("; ".join(exc.messages)))
        return browse
    except RateLimitedError as exc:
        messages.error(request, _sentence(str(exc)))
        return browse
    except IntegrityFailure:  # rolled back: nothing changed
        messages.error(request, INTEGRITY_FAILURE_MESSAGE)
        return browse
    if room is None:  # the service answers None with a 404; for the type checker
        raise Http404("no such room")
    messages.success(request, f"You joined “{selectors.room_label(viewer=actor, room=room).full}”.")
    return _back(room)


# --- The directory ------------------------------------------------------------------------
@never_cache
@require_GET
def people_directory(request: HttpRequest) -> HttpResponse:
    """Find colleagues: the people one may reach (``selectors.people_reachable``: nobody
    behind an information barrier, no compliance officer, no inactive account), with
    their presence and a way to start a conversation."""
    actor = _user(request)
    query = (request.GET.get("q") or "").strip()[:150]
    found = selectors.people_reachable(user=actor, query=query)
    states = presence_of(user_ids=[p.pk for p in found])
    context = {
        "query": query,
        "people": [(p, states.get(p.pk, OFFLINE)) for p in found],
        "limit": selectors.PEOPLE_PAGE_MAX,
        "may_message": perms.may_start_conversations(user=actor),
    }
    return render(request, "rooms/people.html", context)


# --- The reaction picker's emoji ------------------------------------------------------------
EMOJI_MAX_AGE_SECONDS = 86_400


@require_GET
@etag(lambda request: reaction_picker.picker_etag())
def emoji_list(request: HttpRequest) -> HttpResponse:
    """The reaction picker's searchable list (``rooms.reaction_picker``: the ``emoji``
    package's data, built once per process). The same for everyone and no one's content:
    the browser keeps it for a day (``private``: no shared cache) and asks again with its
    ETag (304 while the package is the same)."""
    _user(request)
    response = HttpResponse(reaction_picker.picker_json(), content_type="application/json")
    response["Cache-Control"] = f"private, max-age={EMOJI_MAX_AGE_SECONDS}"
    return response


# --- Mentions -----------------------------------------------------------------------------
@never_cache
@require_GET
def mentions(request: HttpRequest) -> HttpResponse:
    """The messages that mention the reader, across their rooms, newest first
    (``selectors.mentions_for_user``: access and the history rule derived again now);
    ``?before=<id>`` pages back."""
    actor = _user(request)
    before = request.GET.get("before", "")
    paged = before.isascii() and before.isdigit() and len(before) <= 18
    found = selectors.mentions_for_user(user=actor, before=int(before) if paged else None)
    rooms = {
        r.pk: r
        for r in selectors.rooms_for_user(user=actor).filter(pk__in={m.room_id for m in found})
    }
    labels = selectors.room_labels(viewer=actor) if found else {}
    context = {
        # A room lost between the reads is left out, not an error.
        "items": [
            (rooms[m.room_id], labels[m.room_id], message_rendered(m, reader_id=actor.pk))
            for m in found
            if m.room_id in rooms and m.room_id in labels
        ],
        "older": found[-1].id if len(found) == selectors.MENTIONS_PAGE_MAX else None,
        "paged": paged,
    }
    return render(request, "rooms/mentions.html", context)
