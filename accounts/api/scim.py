"""SCIM 2.0 provisioning for identity providers, under ``/scim/v2/`` (RFC 7644;
docs/sso.md "Provisioning (SCIM)").

Thin: a token of scope ``scim`` authenticates (``ScimTokenAuthentication``: the API
token machinery, stored hashed, expiring, revocable, throttled, its refusals audited),
``accounts.scim`` parses, the services write. Every refusal is answered as RFC 7644,
3.12 says (``application/scim+json``, ``schemas``/``status``/``scimType``/``detail``),
never a stack trace, and recorded.
"""

from __future__ import annotations

import logging
from typing import Any, cast

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, renderers
from rest_framework.parsers import BaseParser
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView, set_rollback

from accounts.api.authentication import ApiTokenAuthentication
from accounts.models import ApiToken, ProvisionedAccount, ScimGroup, User
from accounts.roles import MANAGE_USERS
from accounts.scim import (
    GROUP_FILTER_ATTRIBUTES,
    MEDIA_TYPE,
    GroupChanges,
    ScimError,
    UserChanges,
    error_body,
    filter_parse,
    group_changes_from_patch,
    group_from_resource,
    group_resource,
    list_response,
    page_parse,
    resource_types,
    schemas,
    service_provider_config,
    user_changes_from_patch,
    user_from_resource,
    user_resource,
)
from accounts.selectors import people
from accounts.services import user_deactivate, user_reactivate
from accounts.services.provisioning import (
    scim_group_create,
    scim_group_delete,
    scim_group_update,
    scim_request_refused,
    scim_user_create,
    scim_user_update,
)
from safechat.actions import Refused

logger = logging.getLogger(__name__)

# Refusals of a deactivation or reactivation that are a conflict with the state of
# things (the account is a room's sole owner, the last security admin, the token's own
# owner), not a lack of right.
_CONFLICTS = frozenset({"sole owner", "last security admin", "self"})
# Field refusals that mean "taken" (RFC 7644, 3.3: 409 uniqueness).
_TAKEN = frozenset({"unique", "username_lookalike", "email_taken"})


def _json_parser() -> BaseParser:
    # The project's bounded JSON parser (its first default): size limit, UTF-8, nesting and
    # duplicate members refused as 400s, whatever the media type's name.
    kind = cast("type[BaseParser]", api_settings.DEFAULT_PARSER_CLASSES[0])
    return kind()


class ScimJSONParser(BaseParser):
    """``application/scim+json`` (RFC 7644, 3.1), read as the API reads JSON."""

    media_type = MEDIA_TYPE

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return _json_parser().parse(stream, media_type, parser_context)


class PlainJSONParser(ScimJSONParser):
    media_type = "application/json"


class ScimJSONRenderer(renderers.JSONRenderer):
    media_type = MEDIA_TYPE


class ScimTokenAuthentication(ApiTokenAuthentication):
    """The API token scheme, challenging with the SCIM realm; the scope is checked by
    ``HasScimScope``. A request without any ``Authorization`` header is refused as a
    malformed token is (audited ``token.used.refused``, counted per address): the SCIM
    routes have no anonymous use."""

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        from accounts.services.tokens import (
            TokenAttemptsThrottled,
            TokenRefused,
            api_token_authenticate,
        )

        if request.META.get("HTTP_AUTHORIZATION"):
            return super().authenticate(request)
        try:
            api_token_authenticate(presented=None, request=request._request)
        except TokenRefused:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        except TokenAttemptsThrottled as throttled:
            raise exceptions.Throttled(wait=throttled.retry_after) from None
        raise exceptions.AuthenticationFailed("Invalid token.")  # pragma: no cover

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="scim"'


class HasScimScope(BasePermission):
    """A token of scope ``scim`` whose owner may still manage people (active, holding
    ``accounts.manage_users``, read now from their row). Any other token (even
    ``admin``), or a session, is refused (403, recorded ``account.provisioning.refused``,
    ``scope`` or ``permission``)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth if isinstance(request.auth, ApiToken) else None
        if token is None:
            raise exceptions.NotAuthenticated()
        reason = ""
        if token.scope != ApiToken.Scope.SCIM:
            reason = "scope"
        else:
            owner = people().filter(pk=token.user_id).first()
            if owner is None or not (owner.is_active and owner.has_perm(MANAGE_USERS)):
                reason = "permission"
        if reason:
            scim_request_refused(
                actor=token.user, reason=reason,
                detail="This token does not allow SCIM provisioning.", request=request._request,
            )  # fmt: skip
            raise ScimError(403, "This token does not allow SCIM provisioning.")
        return True


def _actor(request: Request) -> User:
    if not isinstance(request.user, User):  # HasScimScope lets only a token's owner through
        raise exceptions.NotAuthenticated()
    return request.user


def _answer(body: dict[str, Any], status: int = 200, location: str = "") -> Response:
    response = Response(body, status=status, content_type=MEDIA_TYPE)
    if location:
        response["Location"] = location
    return response


def scim_error_response(*, status: int, detail: str, scim_type: str = "") -> HttpResponse:
    """An RFC 7644, 3.12 error, never cached."""
    import json

    response = HttpResponse(
        json.dumps(error_body(status=status, detail=detail, scim_type=scim_type)),
        status=status,
        content_type=MEDIA_TYPE,
    )
    response["Cache-Control"] = "no-store"
    return response


def _validation_error(exc: ValidationError) -> ScimError:
    """A service's field refusal as SCIM says it: a taken value 409 ``uniqueness``, a
    username change 400 ``mutability``, anything else 400 ``invalidValue``."""
    details = exc.error_dict if hasattr(exc, "error_dict") else {"": exc.error_list}
    codes = {e.code for errors in details.values() for e in errors}
    fields = ", ".join(sorted(f for f in details if f))
    first = next(iter(next(iter(details.values())))).messages[0]
    message = f"{fields}: {first}" if fields else first
    if codes & _TAKEN:
        return ScimError(409, message, "uniqueness")
    if "mutability" in codes:
        return ScimError(400, message, "mutability")
    return ScimError(400, message, "invalidValue")


def _first_refusal(detail: Any, path: str = "") -> str:
    """The first message of a DRF validation ``detail``, after the attribute it names
    (``name.givenName: ...``)."""
    if isinstance(detail, dict) and detail:
        name, inner = next(iter(detail.items()))
        where = "" if name == "non_field_errors" else f"{path}.{name}".lstrip(".")
        return _first_refusal(inner, where)
    if isinstance(detail, list) and detail:
        return _first_refusal(detail[0], path)
    return f"{path}: {detail}" if path else str(detail)


def scim_exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    """Every exception of a SCIM view as an RFC 7644, 3.12 error; a 500 without detail
    (logged) for one no client caused. Refusals the services did not record (bad
    syntax, values, filters, unknown ids) are recorded here."""
    set_rollback()
    drf_request = context.get("request")
    request: HttpRequest | None = drf_request._request if isinstance(drf_request, Request) else None
    actor = drf_request.user if isinstance(drf_request, Request) else None
    actor = actor if isinstance(actor, User) else None
    if isinstance(exc, ValidationError):
        exc = _validation_error(exc)
    if isinstance(exc, ScimGroup.DoesNotExist):
        exc = ScimError(404, "No such group.")
    if isinstance(exc, exceptions.ParseError):
        exc = ScimError(400, str(exc.detail), "invalidSyntax")
    if isinstance(exc, exceptions.ValidationError):
        # The API's JSON reader refusing a value (a lone surrogate), said in words.
        exc = ScimError(400, _first_refusal(exc.detail), "invalidValue")
    if isinstance(exc, ScimError):
        if exc.status != 403:  # a 403 of HasScimScope is recorded already
            reason = exc.scim_type or ("not_found" if exc.status == 404 else str(exc.status))
            scim_request_refused(actor=actor, reason=reason, detail=exc.detail, request=request)
        return scim_error_response(status=exc.status, detail=exc.detail, scim_type=exc.scim_type)
    if isinstance(exc, Refused):  # recorded by the service that refused
        status = 409 if exc.reason in _CONFLICTS else 403
        return scim_error_response(status=status, detail=exc.message)
    if isinstance(exc, exceptions.AuthenticationFailed | exceptions.NotAuthenticated):
        response = scim_error_response(status=401, detail="A valid SCIM token is required.")
        response["WWW-Authenticate"] = 'Bearer realm="scim"'
        return response
    if isinstance(exc, exceptions.Throttled):
        response = scim_error_response(status=429, detail="Too many requests.")
        wait = getattr(exc, "wait", None)
        if wait is not None:
            response["Retry-After"] = str(max(1, int(wait)))
        return response
    if isinstance(exc, DjangoPermissionDenied):
        return scim_error_response(status=403, detail="Not allowed.")
    if isinstance(exc, exceptions.APIException):
        return scim_error_response(status=exc.status_code, detail=str(exc.detail))
    logger.exception("unhandled SCIM error", exc_info=exc)
    return scim_error_response(status=500, detail="Internal error.")


class ScimView(APIView):
    authentication_classes = (ScimTokenAuthentication,)
    permission_classes = (HasScimScope,)
    parser_classes = (ScimJSONParser, PlainJSONParser)
    renderer_classes = (ScimJSONRenderer, renderers.JSONRenderer)

    def get_exception_handler(self) -> Any:
        return scim_exception_handler

    def finalize_response(
        self, request: Request, response: Any, *args: Any, **kwargs: Any
    ) -> Response:
        final = super().finalize_response(request, response, *args, **kwargs)
        final["Cache-Control"] = "no-store"
        return final


def _location(request: Request, user: User) -> str:
    return request.build_absolute_uri(f"/scim/v2/Users/{user.pk}")


def _resource(request: Request, user: User) -> dict[str, Any]:
    record = ProvisionedAccount.objects.filter(user=user).first()
    modified = record.updated_at if record is not None else user.date_joined
    return user_resource(
        user_id=str(user.pk),
        username=user.get_username(),
        external_id=record.external_id if record is not None else "",
        first_name=user.first_name,
        last_name=user.last_name,
        display_name=user.display_name(),
        email=user.email,
        active=user.is_active,
        created=user.date_joined.isoformat(),
        last_modified=max(modified, user.date_joined).isoformat(),
        location=_location(request, user),
    )


def _person(user_id: str) -> User:
    if not user_id.isdigit() or len(user_id) > 12:
        raise ScimError(404, "No such user.")
    user = people().filter(pk=int(user_id)).first()
    if user is None:
        raise ScimError(404, "No such user.")
    return user


def _active_set(*, request: Request, user: User, active: bool | None) -> None:
    """Deactivate or reactivate through the services every edge uses."""
    if active is None or active == user.is_active:
        return
    if active:
        user_reactivate(actor=_actor(request), user=user, request=request._request)
    else:
        user_deactivate(actor=_actor(request), user=user, request=request._request)


def _apply(*, request: Request, user: User, changes: UserChanges) -> User:
    details = changes.details()
    if details or changes.username is not None:
        scim_user_update(
            actor=_actor(request), user=user, username=changes.username,
            request=request._request, **details,
        )  # fmt: skip
    _active_set(request=request, user=user, active=changes.active)
    user.refresh_from_db()
    return user


def _matching(query: Any) -> QuerySet[User]:
    found = people().order_by("pk")
    text = query.get("filter")
    if text is None:
        return found
    wanted = filter_parse(text)
    if wanted.attribute == "userName":
        return found.filter(username=User.normalize_username(wanted.value.strip()))
    return found.filter(provisioning__external_id=wanted.value) if wanted.value else found.none()


@extend_schema(exclude=True)
class ScimUsersApi(ScimView):
    """``/scim/v2/Users``: list (``filter``, ``startIndex``, ``count``) and create."""

    def get(self, request: Request) -> Response:
        found = _matching(request.query_params)
        start, count = page_parse(request.query_params)
        total = found.count()
        page = list(found[start - 1 : start - 1 + count]) if count else []
        return _answer(
            list_response(
                resources=[_resource(request, u) for u in page], total=total, start_index=start
            )
        )

    def post(self, request: Request) -> Response:
        changes = user_from_resource(request.data)
        user = scim_user_create(
            actor=_actor(request),
            username=changes.username or "",
            email=changes.email or "",
            first_name=changes.first_name or "",
            last_name=changes.last_name or "",
            external_id=changes.external_id or "",
            request=request._request,
        )
        if changes.active is False:
            user_deactivate(actor=_actor(request), user=user, request=request._request)
            user.refresh_from_db()
        return _answer(_resource(request, user), status=201, location=_location(request, user))


@extend_schema(exclude=True)
class ScimUserApi(ScimView):
    """``/scim/v2/Users/<id>``: read, replace (PUT), patch, and DELETE, which deactivates
    (SafeChat never deletes an account: its messages and audit trail are kept)."""

    def get(self, request: Request, user_id: str) -> Response:
        return _answer(_resource(request, _person(user_id)))

    def put(self, request: Request, user_id: str) -> Response:
        user = _person(user_id)
        changes = user_from_resource(request.data)
        return _answer(_resource(request, _apply(request=request, user=user, changes=changes)))

    def patch(self, request: Request, user_id: str) -> Response:
        user = _person(user_id)
        changes = user_changes_from_patch(request.data)
        return _answer(_resource(request, _apply(request=request, user=user, changes=changes)))

    def delete(self, request: Request, user_id: str) -> Response:
        user = _person(user_id)
        _active_set(request=request, user=user, active=False)
        return Response(status=204)


@extend_schema(exclude=True)
class ScimServiceProviderConfigApi(ScimView):
    """``/scim/v2/ServiceProviderConfig`` (RFC 7644, 4)."""

    def get(self, request: Request) -> Response:
        return _answer(service_provider_config())


# --- Groups (RFC 7643, 4.2) -----------------------------------------------------------


def _group_location(request: Request, group: ScimGroup) -> str:
    return request.build_absolute_uri(f"/scim/v2/Groups/{group.pk}")


def _with_members(request: Request) -> bool:
    """Whether to list members: not where ``excludedAttributes`` names them (Entra ID
    asks so when it only looks a group up; RFC 7644, 3.4.2.5)."""
    excluded = request.query_params.get("excludedAttributes", "")
    return "members" not in {a.strip().lower() for a in excluded.split(",")}


def _group_resource(request: Request, group: ScimGroup) -> dict[str, Any]:
    members = None
    if _with_members(request):
        members = [
            {
                "value": str(user.pk),
                "display": user.get_username(),
                "$ref": _location(request, user),
                "type": "User",
            }
            for user in group.members.order_by("pk")
        ]
    return group_resource(
        group_id=str(group.pk),
        display_name=group.display_name,
        external_id=group.external_id,
        members=members,
        created=group.created_at.isoformat(),
        last_modified=group.updated_at.isoformat(),
        location=_group_location(request, group),
    )


def _group(group_id: str) -> ScimGroup:
    if not group_id.isdigit() or len(group_id) > 12:
        raise ScimError(404, "No such group.")
    group = ScimGroup.objects.filter(pk=int(group_id)).first()
    if group is None:
        raise ScimError(404, "No such group.")
    return group


def _member_changes(changes: GroupChanges) -> list[tuple[str, list[int]]]:
    """Member ids as SafeChat's account ids: one that cannot be an id is refused where
    it would be added (400 ``invalidValue``, as one that names no account is by the
    service) and is no change where it would be removed."""
    found: list[tuple[str, list[int]]] = []
    for operation in changes.members:
        ids = [int(i) for i in operation.ids if i.isdigit() and len(i) <= 12]
        if operation.op != "remove" and len(ids) != len(operation.ids):
            raise ScimError(400, "members: A member names no SafeChat account.", "invalidValue")
        found.append((operation.op, ids))
    return found


@extend_schema(exclude=True)
class ScimGroupsApi(ScimView):
    """``/scim/v2/Groups``: list (``filter`` of ``displayName`` or ``externalId``,
    ``startIndex``, ``count``, ``excludedAttributes=members``) and create."""

    def get(self, request: Request) -> Response:
        found = ScimGroup.objects.order_by("pk")
        text = request.query_params.get("filter")
        if text is not None:
            wanted = filter_parse(text, GROUP_FILTER_ATTRIBUTES)
            if wanted.attribute == "displayName":
                found = found.filter(display_name=wanted.value)
            else:
                found = found.filter(external_id=wanted.value) if wanted.value else found.none()
        start, count = page_parse(request.query_params)
        total = found.count()
        page = list(found[start - 1 : start - 1 + count]) if count else []
        return _answer(
            list_response(
                resources=[_group_resource(request, g) for g in page],
                total=total,
                start_index=start,
            )
        )

    def post(self, request: Request) -> Response:
        changes = group_from_resource(request.data)
        members = [i for _, ids in _member_changes(changes) for i in ids]
        group = scim_group_create(
            actor=_actor(request),
            display_name=changes.display_name or "",
            external_id=changes.external_id or "",
            member_ids=members,
            request=request._request,
        )
        return _answer(
            _group_resource(request, group), status=201, location=_group_location(request, group)
        )


@extend_schema(exclude=True)
class ScimGroupApi(ScimView):
    """``/scim/v2/Groups/<id>``: read, replace (PUT), patch, delete."""

    def get(self, request: Request, group_id: str) -> Response:
        return _answer(_group_resource(request, _group(group_id)))

    def put(self, request: Request, group_id: str) -> Response:
        return self._change(request, _group(group_id), group_from_resource(request.data))

    def patch(self, request: Request, group_id: str) -> Response:
        return self._change(request, _group(group_id), group_changes_from_patch(request.data))

    def _change(self, request: Request, group: ScimGroup, changes: GroupChanges) -> Response:
        scim_group_update(
            actor=_actor(request),
            group=group,
            display_name=changes.display_name,
            external_id=changes.external_id,
            member_changes=_member_changes(changes),
            request=request._request,
        )
        group.refresh_from_db()
        return _answer(_group_resource(request, group))

    def delete(self, request: Request, group_id: str) -> Response:
        scim_group_delete(actor=_actor(request), group=_group(group_id), request=request._request)
        return Response(status=204)


def _base_url(request: Request) -> str:
    return request.build_absolute_uri("/scim/v2").rstrip("/")


@extend_schema(exclude=True)
class ScimResourceTypesApi(ScimView):
    """``/scim/v2/ResourceTypes`` (RFC 7644, 4): User and Group."""

    def get(self, request: Request) -> Response:
        found = resource_types(base_url=_base_url(request))
        return _answer(list_response(resources=found, total=len(found), start_index=1))


@extend_schema(exclude=True)
class ScimSchemasApi(ScimView):
    """``/scim/v2/Schemas`` (RFC 7644, 4): the User and Group attributes kept."""

    def get(self, request: Request) -> Response:
        found = schemas(base_url=_base_url(request))
        return _answer(list_response(resources=found, total=len(found), start_index=1))
