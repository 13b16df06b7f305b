"""The account over the API: one's profile (``/api/v1/accounts/me/``) and token management
(``/api/v1/accounts/tokens/``)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotAuthenticated, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.permissions import request_token
from accounts.models import ApiToken, User
from accounts.selectors import api_token_get, api_tokens_for
from accounts.services import api_token_create, api_token_revoke, user_profile_update
from safechat.fields import InputSerializer, StrictCharField, StrictIntegerField, no_body_check
from safechat.pagination import cursor_from_query, cursor_parameters, page_of, page_serializer


def _actor(request: Request) -> User:
    if not isinstance(request.user, User):
        raise NotAuthenticated()
    return request.user


class TokenOutputSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields: tuple[str, ...] = (
            "id", "name", "prefix", "scope", "created_at", "expires_at", "last_used_at",
            "revoked_at",
        )  # fmt: skip
        read_only_fields: tuple[str, ...] = fields


TokenPage = page_serializer("TokenPage", TokenOutputSerializer(many=True))


class TokenListCreateApi(APIView):
    """List your tokens, or create one (the secret is in this answer only)."""

    # Managing tokens with a token needs the admin scope (sessions are not scoped).
    required_token_scope = ApiToken.Scope.ADMIN

    class TokenCreateInputSerializer(InputSerializer):
        name = StrictCharField(max_length=100)
        scope = serializers.ChoiceField(choices=ApiToken.Scope.choices)
        # At most ``SAFECHAT_TOKEN_MAX_DAYS``, and never past the asking token's own
        # expiry: the service checks both, for every edge.
        days = StrictIntegerField(
            min_value=1, max_value=settings.SAFECHAT_TOKEN_MAX_DAYS, required=False
        )

    class TokenCreatedSerializer(TokenOutputSerializer):
        token = serializers.CharField(
            read_only=True, help_text="The secret: shown once, never again."
        )

        class Meta(TokenOutputSerializer.Meta):
            fields: tuple[str, ...] = (*TokenOutputSerializer.Meta.fields, "token")
            read_only_fields: tuple[str, ...] = fields

    @extend_schema(
        parameters=[cursor_parameters(key="token id")],
        responses=TokenPage,
        operation_id="accounts_tokens_list",
    )
    def get(self, request: Request) -> Response:
        cursor = cursor_from_query(request.query_params)
        page = page_of(api_tokens_for(user=_actor(request)), cursor=cursor)
        return Response(page.as_json(TokenOutputSerializer(page.items, many=True).data))

    @extend_schema(
        request=TokenCreateInputSerializer,
        responses={201: TokenCreatedSerializer},
        operation_id="accounts_tokens_create",
    )
    def post(self, request: Request) -> Response:
        data = self.TokenCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        # A refusal of the service is answered as its fields name it (``#/name``).
        token, secret = api_token_create(
            actor=_actor(request),
            name=data.validated_data["name"],
            scope=data.validated_data["scope"],
            days=data.validated_data.get("days"),
            via_token=request_token(request),
            request=request._request,
        )
        body = dict(TokenOutputSerializer(token).data)
        body["token"] = secret
        return Response(body, status=status.HTTP_201_CREATED)


class TokenRevokeApi(APIView):
    """Revoke one of your tokens."""

    required_token_scope = ApiToken.Scope.ADMIN

    @extend_schema(responses={204: None}, operation_id="accounts_tokens_revoke")
    def delete(self, request: Request, token_id: int) -> Response:
        token = api_token_get(user=_actor(request), token_id=token_id)
        if token is None:
            raise NotFound()
        no_body_check(request)
        api_token_revoke(actor=_actor(request), token=token, request=request._request)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProfileOutputSerializer(serializers.Serializer[User]):
    id = serializers.IntegerField(source="pk", read_only=True)
    username = serializers.CharField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    last_name = serializers.CharField(read_only=True)
    display_name = serializers.CharField(
        read_only=True, help_text="How others see you: first and last name, else the username."
    )


def _profile_json(user: User) -> dict[str, object]:
    return {
        "id": user.pk,
        "username": user.get_username(),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "display_name": user.display_name(),
    }


class ProfileApi(APIView):
    """Your own profile: the display name others see beside your username."""

    class ProfileUpdateInput(InputSerializer):
        # Surrounding spaces are dropped; the rules of a name (no direction control, not
        # only invisible characters) are the service's, as on every edge (400, per field).
        first_name = StrictCharField(max_length=150, required=False, allow_blank=True)
        last_name = StrictCharField(max_length=150, required=False, allow_blank=True)

    @extend_schema(responses=ProfileOutputSerializer, operation_id="accounts_me_retrieve")
    def get(self, request: Request) -> Response:
        return Response(_profile_json(_actor(request)))

    @extend_schema(
        request=ProfileUpdateInput,
        responses=ProfileOutputSerializer,
        operation_id="accounts_me_update",
        description=(
            "Change your display name: the fields sent (an empty string clears one), the "
            "others as they are (`accounts.services.user_profile_update`). The members of "
            "your rooms see the new name at once (`member.updated`); the audit log records "
            "which fields changed, never their values (`account.profile.updated`). A name "
            "with a direction control (U+202E and the like) or made only of invisible "
            "characters is refused (400, `invalid`, with a pointer to the field)."
        ),
    )
    def patch(self, request: Request) -> Response:
        data = self.ProfileUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        user = user_profile_update(
            actor=_actor(request), request=request._request, **data.validated_data
        )
        return Response(_profile_json(user))
