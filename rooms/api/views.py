"""Room API: one class per operation, thin; every write calls ``rooms.services``.

Querysets are always scoped to the requesting user: a room they cannot view
answers 404, in lists too.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.exceptions import ErrorDetail, NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.selectors import person_active_get, person_get
from rooms import selectors, services
from rooms.api.serializers import JoinableRoomOutput, MemberOutput, MessageOutput, RoomOutput
from rooms.models import Membership, Message, Room, RoomChange
from rooms.services.messages import MAX_MESSAGE_BYTES
from rooms.wire import message_json
from safechat.fields import (
    IDEMPOTENCY_KEY,
    HeaderRefused,
    InputSerializer,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    no_body_check,
)
from safechat.pagination import (
    KEY_MAX,
    LIMIT_MAX,
    LIMIT_MIN,
    cursor_from_query,
    cursor_parameters,
    page_of,
    page_serializer,
    query_integer,
    query_names_check,
    query_text,
    search_parameter,
)

# What a key may be, in the schema: ``rooms.services.messages.client_key_clean``'s rule
# (1-64 visible ASCII characters but the comma; empty is refused, as is any other value).
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x2b\x2d-\x7e]{1,64}$"
# The longest search text a list takes (``q``), in characters.
SEARCH_MAX = 100


def _user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):  # IsAuthenticated runs first; this never happens
        raise NotAuthenticated()
    return user


def _room_json(request: Request, room: Room) -> Any:
    """``room`` as ``RoomOutput``, with its unread count for the caller as in the list (a
    room answered after a write is read again, annotated)."""
    user = _user(request)
    annotated = selectors.room_list_for_user(user=user).filter(pk=room.pk).first()
    labels = selectors.room_labels(viewer=user)
    return RoomOutput(annotated or room, context={"labels": labels}).data


def _person(user_id: int) -> User | None:
    """The active person ``user_id`` names, or None: the service answers a None after
    checking the caller's right, so an id says nothing to someone without it."""
    return person_active_get(user_id=user_id)


RoomPage = page_serializer("RoomPage", RoomOutput(many=True))
JoinableRoomPage = page_serializer("JoinableRoomPage", JoinableRoomOutput(many=True))
MemberPage = page_serializer("MemberPage", MemberOutput(many=True))
MessagePage = page_serializer("MessagePage", MessageOutput(many=True))


class RoomListApi(APIView):
    @extend_schema(
        parameters=[cursor_parameters(key="room id")],
        responses=RoomPage,
        operation_id="rooms_list",
    )
    def get(self, request: Request) -> Response:
        """The rooms you may view, by id (ascending), paginated, each with its `label`:
        what it is called for you (a direct conversation by its other participants),
        qualified where two of your rooms would look alike."""
        cursor = cursor_from_query(request.query_params)
        user = _user(request)
        page = page_of(selectors.room_list_for_user(user=user), cursor=cursor)
        labels = selectors.room_labels(viewer=user)
        return Response(
            page.as_json(RoomOutput(page.items, many=True, context={"labels": labels}).data)
        )


class RoomCreateApi(APIView):
    class RoomCreateInput(InputSerializer):
        name = StrictCharField(max_length=120)
        topic = StrictCharField(max_length=500, required=False, allow_blank=True)
        history_visible = StrictBooleanField(required=False, default=False)
        visibility = serializers.ChoiceField(
            choices=Room.Visibility.choices,
            required=False,
            default=Room.Visibility.PRIVATE,
            help_text="private (the default): invitation only; listed: anyone in the "
            "organisation whom information barriers allow may find and join it",
        )

    @extend_schema(
        request=RoomCreateInput, responses={201: RoomOutput}, operation_id="rooms_create"
    )
    def post(self, request: Request) -> Response:
        data = self.RoomCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_create(actor=_user(request), **data.validated_data)
        return Response(_room_json(request, room), status=status.HTTP_201_CREATED)


class DirectConversationCreateApi(APIView):
    class DirectConversationCreateInput(InputSerializer):
        participants = serializers.ListField(
            child=StrictIntegerField(min_value=1),
            min_length=1,
            max_length=7,
            help_text="The other people's ids, each once (a repeat is refused, code "
            "duplicate, at its index).",
        )

        def validate_participants(self, value: list[int]) -> list[int]:
            # Each person once: a repeat is a mistake, refused at its index, not merged.
            seen: set[int] = set()
            repeats: dict[int, list[ErrorDetail]] = {}
            for index, person in enumerate(value):
                if person in seen:
                    repeats[index] = [
                        ErrorDetail("This person is listed already.", code="duplicate")
                    ]
                seen.add(person)
            if repeats:
                raise serializers.ValidationError(repeats)  # type: ignore[arg-type]
            return value

    @extend_schema(
        request=DirectConversationCreateInput,
        responses={201: RoomOutput},
        operation_id="direct_create",
    )
    def post(self, request: Request) -> Response:
        data = self.DirectConversationCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        participants = [_person(pk) for pk in data.validated_data["participants"]]
        room = services.direct_conversation_create(actor=_user(request), participants=participants)
        return Response(_room_json(request, room), status=status.HTTP_201_CREATED)


class RoomDetailApi(APIView):
    class RoomDetailUpdateInput(InputSerializer):
        name = StrictCharField(max_length=120, required=False)
        topic = StrictCharField(max_length=500, required=False, allow_blank=True)
        history_visible = StrictBooleanField(required=False)
        visibility = serializers.ChoiceField(
            choices=Room.Visibility.choices,
            required=False,
            help_text="private or listed; a direct conversation is never listed (400)",
        )

    @extend_schema(responses=RoomOutput, operation_id="rooms_retrieve")
    def get(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        return Response(_room_json(request, room))

    @extend_schema(request=RoomDetailUpdateInput, responses=RoomOutput, operation_id="rooms_update")
    def patch(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.RoomDetailUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_update(actor=_user(request), room=room, **data.validated_data)
        return Response(_room_json(request, room))


class RoomJoinableListApi(APIView):
    @extend_schema(
        parameters=[
            search_parameter(
                max_length=SEARCH_MAX,
                help_text="Case-insensitive part of a room's name or topic; empty or absent "
                "lists them all.",
            ),
            cursor_parameters(key="room id"),
        ],
        responses=JoinableRoomPage,
        operation_id="rooms_joinable_list",
    )
    def get(self, request: Request) -> Response:
        """The listed rooms you may join, by id (ascending), paginated: listed channels
        that are not archived, that you are not in, and where no information barrier
        separates you from a member; none for a compliance officer
        (``rooms.selectors.rooms_joinable``). Join one with ``POST .../<id>/join/``."""
        cursor = cursor_from_query(request.query_params, also=("q",))
        query = query_text(request.query_params, "q", max_length=SEARCH_MAX)
        found = selectors.rooms_joinable(user=_user(request), query=query)
        page = page_of(found, cursor=cursor)
        return Response(page.as_json(JoinableRoomOutput(page.items, many=True).data))


class RoomJoinApi(APIView):
    @extend_schema(
        request=None,
        responses={200: RoomOutput},
        operation_id="rooms_join",
        description=(
            "Join a listed room as a member (`rooms.services.room_join`); you receive what "
            "the room's history setting lets a newcomer read. Already a member: the room, "
            "nothing changes. A private room, a direct conversation, a room an information "
            "barrier keeps from you, and any room for a compliance officer answer 404 "
            "exactly as an id that names no room (the refusal is audited); an archived "
            "listed room 403."
        ),
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_for_join(room_id=room_id)
        no_body_check(request)
        membership = services.room_join(actor=_user(request), room=room)
        return Response(_room_json(request, membership.room))


class RoomMuteApi(APIView):
    class RoomMuteInput(InputSerializer):
        mute = serializers.ChoiceField(
            choices=Membership.Mute.choices,
            help_text="off; messages: unread shown muted, only mentions notify; all: "
            "mentions do not notify either",
        )

    @extend_schema(request=RoomMuteInput, responses=RoomOutput, operation_id="rooms_mute")
    def post(self, request: Request, room_id: int) -> Response:
        """Set how the room notifies you (your own setting, any member, archived rooms
        too); your other tabs hear ``room.muted``. The room's ``mute`` says it back."""
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.RoomMuteInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.membership_mute_set(
            actor=_user(request), room=room, mute=data.validated_data["mute"]
        )
        return Response(_room_json(request, room))


class RoomArchiveApi(APIView):
    @extend_schema(request=None, responses=RoomOutput, operation_id="rooms_archive")
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        no_body_check(request)
        room = services.room_archive(actor=_user(request), room=room)
        return Response(_room_json(request, room))


class RoomUnarchiveApi(APIView):
    @extend_schema(request=None, responses=RoomOutput, operation_id="rooms_unarchive")
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        no_body_check(request)
        room = services.room_unarchive(actor=_user(request), room=room)
        return Response(_room_json(request, room))


class MemberListApi(APIView):
    class MemberListInput(InputSerializer):
        user_id = StrictIntegerField(min_value=1)
        role = serializers.ChoiceField(choices=Membership.Role.choices, default="member")

    @extend_schema(
        parameters=[cursor_parameters(key="user_id")],
        responses=MemberPage,
        operation_id="members_list",
    )
    def get(self, request: Request, room_id: int) -> Response:
        cursor = cursor_from_query(request.query_params)
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        members = selectors.room_members(user=_user(request), room=room)
        page = page_of(members, cursor=cursor, key="user_id")
        return Response(page.as_json(MemberOutput(page.items, many=True).data))

    @extend_schema(
        request=MemberListInput,
        responses={
            201: MemberOutput,
            200: OpenApiResponse(
                MemberOutput, description="a member already, under this role: nothing written"
            ),
            409: OpenApiResponse(
                description="a member already, under another role (`already_member`): "
                "change it with `members_update`"
            ),
        },
        operation_id="members_add",
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.MemberListInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership, created = services.membership_add(
            actor=_user(request),
            room=room,
            user=_person(data.validated_data["user_id"]),
            role=data.validated_data["role"],
        )
        return Response(
            MemberOutput(membership).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class MemberDetailApi(APIView):
    class MemberDetailInput(InputSerializer):
        role = serializers.ChoiceField(choices=Membership.Role.choices)

    @extend_schema(request=MemberDetailInput, responses=MemberOutput, operation_id="members_update")
    def patch(self, request: Request, room_id: int, user_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.MemberDetailInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_role_change(
            actor=_user(request),
            room=room,
            member=person_get(user_id=user_id),
            role=data.validated_data["role"],
        )
        return Response(MemberOutput(membership).data)

    @extend_schema(responses={204: None}, operation_id="members_remove")
    def delete(self, request: Request, room_id: int, user_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        member = person_get(user_id=user_id)
        no_body_check(request)
        services.membership_remove(actor=_user(request), room=room, member=member)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _message_in_room(request: Request, room_id: int, message_id: int) -> Message:
    """A message the requester may view, and only under the room of the URL."""
    message = selectors.message_get_for_user(user=_user(request), message_id=message_id)
    if message.room_id != int(room_id):
        raise Http404("no such message")
    return message


# The length is the service's one rule (UTF-8 bytes, the same reason on every edge), not
# a count of characters here that would answer a different reason.
MESSAGE_TEXT_HELP = (
    f"Markdown, at most {MAX_MESSAGE_BYTES} bytes ({MAX_MESSAGE_BYTES // 1024} KiB) in UTF-8; "
    "a longer text is refused (400) with the reason."
)


class MessageListApi(APIView):
    class MessageListInput(InputSerializer):
        text = StrictCharField(trim_whitespace=False, help_text=MESSAGE_TEXT_HELP)
        parent_id = StrictIntegerField(required=False, allow_null=True, min_value=1)

    @extend_schema(
        parameters=[cursor_parameters(key="message id")],
        responses=MessagePage,
        operation_id="messages_list",
    )
    def get(self, request: Request, room_id: int) -> Response:
        """The room's messages, newest first, paginated on their ids: ``before`` for
        older ones ("load older"), ``after`` for newer ones (what a client missed)."""
        cursor = cursor_from_query(request.query_params)
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        page = selectors.message_page_at(reader=_user(request), room=room, cursor=cursor)
        return Response(page.as_json([message_json(m) for m in page.items]))

    # The one write whose retry a key makes safe (``safechat.api.IdempotencyKeyHonoured``
    # refuses a key on any other).
    idempotency_key_methods = ("POST",)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY,
                str,
                location=OpenApiParameter.HEADER,
                pattern=IDEMPOTENCY_KEY_PATTERN,
                description=(
                    "Optional, 1-64 visible ASCII characters but the comma, chosen by the "
                    "client (a UUID, say); one key for one message, sent once. Every refusal "
                    "of the key names it as the error's parameter, with its own code: "
                    "empty or malformed, 400 code invalid; the header twice, or a comma in "
                    "it, 400 code repeated; used in another room, 400 code other_room; "
                    "with another text or parent_id, 422 code reused. A repeat of the post "
                    "with the same key, text and parent_id, within SAFECHAT_IDEMPOTENCY_HOURS (24 "
                    "h by default), stores nothing and answers 201 with the original message as it"
                    " is now (its current text and revision if it was edited since, or marked "
                    "deleted): retry safely after a timeout or a 429. The same key with another "
                    "text or parent_id is refused with 422 (problem code idempotency_key_reused) "
                    "and stores nothing. Keys are per user."
                ),
            )
        ],
        request=MessageListInput,
        responses={
            201: MessageOutput,
            422: OpenApiResponse(
                description="The Idempotency-Key was already used for another text or "
                "parent_id within the window; nothing was stored."
            ),
        },
        operation_id="messages_create",
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.MessageListInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.message_post(
            sender=_user(request),
            room=room,
            text=data.validated_data["text"],
            parent_id=data.validated_data.get("parent_id"),
            client_key=_idempotency_key(request),
        )
        view = selectors.message_view(reader=_user(request), message=message)
        return Response(message_json(view), status=status.HTTP_201_CREATED)


def _idempotency_key(request: Request) -> str | None:
    """The request's one ``Idempotency-Key``, or None. The header sent twice reaches
    Django joined with a comma (as it does any repeated header), so a comma, which no key
    holds, is refused: which of two keys counts would be a guess (400 ``repeated``)."""
    value = request.headers.get(IDEMPOTENCY_KEY)
    if value is not None and "," in value:
        raise HeaderRefused(
            header=IDEMPOTENCY_KEY,
            detail="Send one key, once; a key holds no comma.",
            code="repeated",
        )
    return value


class MessageDetailApi(APIView):
    class MessageDetailInput(InputSerializer):
        text = StrictCharField(trim_whitespace=False, help_text=MESSAGE_TEXT_HELP)

    @extend_schema(responses=MessageOutput, operation_id="messages_retrieve")
    def get(self, request: Request, room_id: int, message_id: int) -> Response:
        """One message, under the same rules as the list: deleted messages, and in a room
        that hides history those from before you joined, are not found (404)."""
        message = _message_in_room(request, room_id, message_id)
        return Response(
            message_json(selectors.message_view(reader=_user(request), message=message))
        )

    @extend_schema(
        request=MessageDetailInput, responses=MessageOutput, operation_id="messages_edit"
    )
    def patch(self, request: Request, room_id: int, message_id: int) -> Response:
        message = _message_in_room(request, room_id, message_id)
        data = self.MessageDetailInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.message_edit(
            actor=_user(request), message=message, text=data.validated_data["text"]
        )
        return Response(
            message_json(selectors.message_view(reader=_user(request), message=message))
        )

    @extend_schema(responses={204: None}, operation_id="messages_delete")
    def delete(self, request: Request, room_id: int, message_id: int) -> Response:
        message = _message_in_room(request, room_id, message_id)
        no_body_check(request)
        services.message_delete(actor=_user(request), message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReactionToggleApi(APIView):
    class ReactionToggleInput(InputSerializer):
        emoji = StrictCharField(max_length=16)

    @extend_schema(
        request=ReactionToggleInput,
        responses=inline_serializer("ReactionState", {"set": serializers.BooleanField()}),
        operation_id="reactions_toggle",
    )
    def post(self, request: Request, room_id: int, message_id: int) -> Response:
        message = _message_in_room(request, room_id, message_id)
        data = self.ReactionToggleInput(data=request.data)
        data.is_valid(raise_exception=True)
        now_set = services.reaction_toggle(
            actor=_user(request), message=message, emoji=data.validated_data["emoji"]
        )
        return Response({"set": now_set})


class ReadMarkerApi(APIView):
    class ReadMarkerInput(InputSerializer):
        message_id = StrictIntegerField(min_value=1)

    @extend_schema(
        request=ReadMarkerInput,
        responses=inline_serializer(
            "ReadMarker", {"last_read_message_id": serializers.IntegerField()}
        ),
        operation_id="read_marker_set",
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.ReadMarkerInput(data=request.data)
        data.is_valid(raise_exception=True)
        marker = services.read_marker_set(
            actor=_user(request), room=room, message_id=data.validated_data["message_id"]
        )
        return Response({"last_read_message_id": marker})


MentionPage = page_serializer("MentionPage", MessageOutput(many=True))


class MentionListApi(APIView):
    """The messages that mention the caller, across the rooms they may view now."""

    @extend_schema(
        parameters=[cursor_parameters(max_limit=selectors.MENTIONS_PAGE_MAX, key="message id")],
        responses=MentionPage,
        operation_id="mentions_list",
        description=(
            "Newest first, paginated on the message id like every list. Access is checked "
            "again on every call: a room left, a deleted message and a message from before "
            "the caller joined a room that hides history are not listed."
        ),
    )
    def get(self, request: Request) -> Response:
        cursor = cursor_from_query(
            request.query_params,
            default_limit=selectors.MENTIONS_PAGE_MAX,
            max_limit=selectors.MENTIONS_PAGE_MAX,
        )
        page = selectors.mentions_page(user=_user(request), cursor=cursor)
        return Response(page.as_json([message_json(m) for m in page.items]))


class PersonOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(source="pk")
    username = serializers.CharField()
    display_name = serializers.SerializerMethodField()

    def get_display_name(self, person: User) -> str:
        return person.get_full_name() or person.get_username()


PersonPage = page_serializer("PersonPage", PersonOutput(many=True))


class PeopleListApi(APIView):
    @extend_schema(
        parameters=[
            search_parameter(
                max_length=SEARCH_MAX,
                help_text="Case-insensitive part of a username, first or last name; empty "
                "or absent lists everyone.",
            ),
            OpenApiParameter(
                "room",
                int,
                description="A room you can see: only people who could be added to it now "
                "(not its members, nobody an information barrier separates from one of "
                "them). A room you cannot see is a 404.",
            ),
            cursor_parameters(max_limit=selectors.PEOPLE_PAGE_MAX, key="user id"),
        ],
        responses=PersonPage,
        operation_id="people_list",
    )
    def get(self, request: Request) -> Response:
        """The people you may start a conversation with or add to a room, by id: active
        people only, never yourself, never a compliance officer, never someone an
        information barrier separates from you (``rooms.selectors.people_reachable``);
        with ``room``, only those who could be added to it now
        (``rooms.selectors.people_addable_matching``). Their ids are what ``direct`` and
        ``members`` take."""
        cursor = cursor_from_query(
            request.query_params, max_limit=selectors.PEOPLE_PAGE_MAX, also=("q", "room")
        )
        query = query_text(request.query_params, "q", max_length=SEARCH_MAX)
        room_id = query_text(request.query_params, "room", max_length=20)
        found = (
            selectors.people_addable_matching(
                user=_user(request),
                room=selectors.room_get_for_user(user=_user(request), room_id=room_id),
                query=query,
            )
            if room_id
            else selectors.people_reachable_matching(user=_user(request), query=query)
        )
        page = page_of(found, cursor=cursor)
        return Response(page.as_json(PersonOutput(page.items, many=True).data))


class ChangeOutput(serializers.Serializer[Any]):
    id = serializers.IntegerField(help_text="The entry's cursor: ask `after` it next.")
    kind = serializers.ChoiceField(choices=RoomChange.Kind.choices)
    room_id = serializers.IntegerField()
    occurred_at = serializers.DateTimeField()
    message_id = serializers.IntegerField(allow_null=True)
    user_id = serializers.IntegerField(
        allow_null=True, help_text="The member a membership change is about."
    )
    role = serializers.CharField(
        help_text="The member's role, for member.added and member.role_changed; empty otherwise."
    )
    message = MessageOutput(
        allow_null=True,
        help_text="message.*: the message as you may see it now (edited since); null "
        "once it is deleted, and for membership entries.",
    )


class ChangeFeedOutput(serializers.Serializer[Any]):
    results = ChangeOutput(many=True)
    has_more = serializers.BooleanField(help_text="More entries are ready: ask again now.")
    next_after = serializers.IntegerField(
        help_text="The cursor to ask with next (never behind the one given)."
    )


class ChangeFeedApi(APIView):
    class ChangeFeedQuery(serializers.Serializer[Any]):
        after = serializers.IntegerField(
            required=False,
            min_value=0,
            max_value=KEY_MAX,
            default=0,
            help_text="The last entry you have (`next_after` of your previous answer); "
            "0 or absent: from the start. Never empty.",
        )
        limit = serializers.IntegerField(
            required=False, min_value=LIMIT_MIN, max_value=LIMIT_MAX, default=LIMIT_MAX
        )

    @extend_schema(
        parameters=[ChangeFeedQuery],
        responses=ChangeFeedOutput,
        operation_id="changes_list",
    )
    def get(self, request: Request) -> Response:
        """What changed since your cursor in the rooms you may view: messages posted,
        edited and deleted, members added, removed and given another role; in commit
        order, at least once, never skipping one (docs/api.md, "The change feed")."""
        # after and limit only: the feed is read forwards (``before`` is refused, 400).
        query_names_check(request.query_params, ("after", "limit"))
        after = query_integer(request.query_params, "after", minimum=0, maximum=None)
        limit = query_integer(request.query_params, "limit", minimum=LIMIT_MIN, maximum=LIMIT_MAX)
        page = selectors.changes_after(
            reader=_user(request), after=after or 0, limit=limit or LIMIT_MAX
        )
        stamp = serializers.DateTimeField()
        results = [
            {
                "id": item.id,
                "kind": item.kind,
                "room_id": item.room_id,
                "occurred_at": stamp.to_representation(item.occurred_at),
                "message_id": item.message_id,
                "user_id": item.user_id,
                "role": item.role,
                "message": None if item.message is None else message_json(item.message),
            }
            for item in page.items
        ]
        return Response(
            {"results": results, "has_more": page.has_more, "next_after": page.next_after}
        )
