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
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.selectors import person_active_get, person_get
from rooms import selectors, services
from rooms.api.serializers import MemberOutput, MessageOutput, RoomOutput
from rooms.models import Membership, Message, Room
from rooms.services.messages import MAX_MESSAGE_BYTES
from rooms.wire import message_json

IDEMPOTENCY_KEY = "Idempotency-Key"


class TextField(serializers.CharField):
    """Text exactly as sent: a number or a list is refused, not coerced to a string."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return str(super().to_internal_value(data))


def _user(request: Request) -> User:
    user = request.user
    if not isinstance(user, User):  # IsAuthenticated runs first; this never happens
        raise NotAuthenticated()
    return user


def _room_json(request: Request, room: Room) -> Any:
    """``room`` as ``RoomOutput``, with its unread count for the caller as in the list (a
    room answered after a write is read again, annotated)."""
    annotated = selectors.room_list_for_user(user=_user(request)).filter(pk=room.pk).first()
    return RoomOutput(annotated or room).data


def _person(user_id: int) -> User | None:
    """The active person ``user_id`` names, or None: the service answers a None after
    checking the caller's right, so an id says nothing to someone without it."""
    return person_active_get(user_id=user_id)


class RoomListApi(APIView):
    @extend_schema(responses=RoomOutput(many=True), operation_id="rooms_list")
    def get(self, request: Request) -> Response:
        rooms = selectors.room_list_for_user(user=_user(request))
        return Response(RoomOutput(rooms, many=True).data)


class RoomCreateApi(APIView):
    class RoomCreateInput(serializers.Serializer[dict[str, Any]]):
        name = serializers.CharField(max_length=120)
        topic = serializers.CharField(max_length=500, required=False, allow_blank=True)
        history_visible = serializers.BooleanField(required=False, default=False)

    @extend_schema(
        request=RoomCreateInput, responses={201: RoomOutput}, operation_id="rooms_create"
    )
    def post(self, request: Request) -> Response:
        data = self.RoomCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        room = services.room_create(actor=_user(request), **data.validated_data)
        return Response(_room_json(request, room), status=status.HTTP_201_CREATED)


class DirectConversationCreateApi(APIView):
    class DirectConversationCreateInput(serializers.Serializer[dict[str, Any]]):
        participants = serializers.ListField(
            child=serializers.IntegerField(), min_length=1, max_length=7
        )

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
    class RoomDetailUpdateInput(serializers.Serializer[dict[str, Any]]):
        name = serializers.CharField(max_length=120, required=False)
        topic = serializers.CharField(max_length=500, required=False, allow_blank=True)
        history_visible = serializers.BooleanField(required=False)

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


class RoomArchiveApi(APIView):
    @extend_schema(request=None, responses=RoomOutput, operation_id="rooms_archive")
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        room = services.room_archive(actor=_user(request), room=room)
        return Response(_room_json(request, room))


class RoomUnarchiveApi(APIView):
    @extend_schema(request=None, responses=RoomOutput, operation_id="rooms_unarchive")
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        room = services.room_unarchive(actor=_user(request), room=room)
        return Response(_room_json(request, room))


class MemberListApi(APIView):
    class MemberListInput(serializers.Serializer[dict[str, Any]]):
        user_id = serializers.IntegerField()
        role = serializers.ChoiceField(choices=Membership.Role.choices, default="member")

    @extend_schema(responses=MemberOutput(many=True), operation_id="members_list")
    def get(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        members = selectors.room_members(user=_user(request), room=room)
        return Response(MemberOutput(members, many=True).data)

    @extend_schema(
        request=MemberListInput, responses={201: MemberOutput}, operation_id="members_add"
    )
    def post(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        data = self.MemberListInput(data=request.data)
        data.is_valid(raise_exception=True)
        membership = services.membership_add(
            actor=_user(request),
            room=room,
            user=_person(data.validated_data["user_id"]),
            role=data.validated_data["role"],
        )
        return Response(MemberOutput(membership).data, status=status.HTTP_201_CREATED)


class MemberDetailApi(APIView):
    class MemberDetailInput(serializers.Serializer[dict[str, Any]]):
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
        services.membership_remove(actor=_user(request), room=room, member=member)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _message_in_room(request: Request, room_id: int, message_id: int) -> Message:
    """A message the requester may view, and only under the room of the URL."""
    message = selectors.message_get_for_user(user=_user(request), message_id=message_id)
    if message.room_id != int(room_id):
        raise Http404("no such message")
    return message


class MessageListApi(APIView):
    class MessageListInput(serializers.Serializer[dict[str, Any]]):
        text = TextField(trim_whitespace=False, max_length=MAX_MESSAGE_BYTES)
        parent_id = serializers.IntegerField(required=False, allow_null=True)

    class MessageListPageOutput(serializers.Serializer[dict[str, Any]]):
        results = MessageOutput(many=True)
        next_before = serializers.IntegerField(allow_null=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("before", int, description="only messages older than this id"),
            OpenApiParameter("after", int, description="only messages newer than this id"),
            OpenApiParameter("limit", int, description="page size, 1-100 (default 50)"),
        ],
        responses=MessageListPageOutput,
        operation_id="messages_list",
    )
    def get(self, request: Request, room_id: int) -> Response:
        room = selectors.room_get_for_user(user=_user(request), room_id=room_id)
        cursor = _Cursor(data=request.query_params)
        cursor.is_valid(raise_exception=True)
        page = selectors.message_page(reader=_user(request), room=room, **cursor.validated_data)
        next_before = page[-1].id if len(page) == cursor.validated_data["limit"] else None
        return Response({"results": [message_json(m) for m in page], "next_before": next_before})

    @extend_schema(
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_KEY,
                str,
                location=OpenApiParameter.HEADER,
                description=(
                    "Optional, 1-64 visible ASCII characters chosen by the client (a UUID, "
                    "say); one key for one message. A repeat of the post with the same "
                    "key, text and parent_id, within SAFECHAT_IDEMPOTENCY_HOURS (24 h by "
                    "default), stores nothing and answers 201 with the original message "
                    "as it is now (its current text and revision if it was edited since, "
                    "or marked deleted): retry safely after a timeout or a 429. The same "
                    "key with another text or parent_id is refused with 422 "
                    "(code idempotency_key_reused) and stores nothing. Keys are per "
                    "user; one used in another room is refused (400)."
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
            client_key=request.headers.get(IDEMPOTENCY_KEY),
        )
        view = selectors.message_view(reader=_user(request), message=message)
        return Response(message_json(view), status=status.HTTP_201_CREATED)


class _Cursor(serializers.Serializer[dict[str, Any]]):
    before = serializers.IntegerField(required=False, min_value=1)
    after = serializers.IntegerField(required=False, min_value=0)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=100, default=50)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "before" in attrs and "after" in attrs:
            raise serializers.ValidationError("use either before or after, not both")
        return attrs


class MessageDetailApi(APIView):
    class MessageDetailInput(serializers.Serializer[dict[str, Any]]):
        text = TextField(trim_whitespace=False, max_length=MAX_MESSAGE_BYTES)

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
        services.message_delete(actor=_user(request), message=message)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReactionToggleApi(APIView):
    class ReactionToggleInput(serializers.Serializer[dict[str, Any]]):
        emoji = serializers.CharField(max_length=16)

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
    class ReadMarkerInput(serializers.Serializer[dict[str, Any]]):
        message_id = serializers.IntegerField(min_value=1)

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


class MentionListApi(APIView):
    """The messages that mention the caller, across the rooms they may view now."""

    class MentionListQuery(serializers.Serializer[dict[str, Any]]):
        before = serializers.IntegerField(required=False, min_value=1)
        limit = serializers.IntegerField(
            required=False, min_value=1, max_value=selectors.MENTIONS_PAGE_MAX, default=50
        )

    class MentionListPageOutput(serializers.Serializer[dict[str, Any]]):
        results = MessageOutput(many=True)
        next_before = serializers.IntegerField(allow_null=True)

    @extend_schema(
        parameters=[
            OpenApiParameter("before", int, description="only messages older than this id"),
            OpenApiParameter("limit", int, description="page size, 1-50 (default 50)"),
        ],
        responses=MentionListPageOutput,
        operation_id="mentions_list",
        description=(
            "Newest first. Access is checked again on every call: a room left, a deleted "
            "message and a message from before the caller joined a room that hides history "
            "are not listed."
        ),
    )
    def get(self, request: Request) -> Response:
        query = self.MentionListQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        page = selectors.mentions_for_user(user=_user(request), **query.validated_data)
        next_before = page[-1].id if len(page) == query.validated_data["limit"] else None
        return Response({"results": [message_json(m) for m in page], "next_before": next_before})
