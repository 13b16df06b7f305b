"""Test-only controls of the provider: register a client, create and sign in a person,
choose the next tokens' misbehaviour. JSON in, JSON out; bound to loopback only."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.contrib.auth import get_user_model, login
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oauth2_provider.models import get_application_model

from tests.oidc_provider import validator


def _body(request: HttpRequest) -> dict[str, Any]:
    data = json.loads(request.body or b"{}")
    if not isinstance(data, dict):
        raise ValueError("a JSON object is expected")
    return data


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@csrf_exempt
@require_POST
def client_register(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    application = get_application_model()
    application.objects.filter(client_id=data["client_id"]).delete()
    application.objects.create(
        name=data["client_id"],
        client_id=data["client_id"],
        client_secret=data["client_secret"],
        client_type="confidential",
        authorization_grant_type="authorization-code",
        redirect_uris=data["redirect_uri"],
        post_logout_redirect_uris=data.get("post_logout_redirect_uri", ""),
        algorithm="RS256",
        skip_authorization=True,
    )
    return JsonResponse({"client_id": data["client_id"]})


@csrf_exempt
@require_POST
def user_create(request: HttpRequest) -> JsonResponse:
    data = _body(request)
    user, _ = get_user_model().objects.update_or_create(
        username=data["username"],
        defaults={
            "email": data.get("email", ""),
            "first_name": data.get("first_name", ""),
            "last_name": data.get("last_name", ""),
        },
    )
    return JsonResponse({"sub": str(user.pk)})


@csrf_exempt
@require_POST
def user_sign_in(request: HttpRequest) -> JsonResponse:
    user = get_user_model().objects.get(username=_body(request)["username"])
    login(request, user, backend="django.contrib.auth.backends.ModelBackend")
    # A new session at the provider: its ID tokens carry this sid from now on.
    validator.SESSIONS[user.pk] = secrets.token_urlsafe(12)
    return JsonResponse({"sub": str(user.pk), "sid": validator.SESSIONS[user.pk]})


@csrf_exempt
@require_POST
def behaviour_set(request: HttpRequest) -> JsonResponse:
    validator.BEHAVIOUR.clear()
    validator.BEHAVIOUR.update(_body(request))
    return JsonResponse(validator.BEHAVIOUR)


@csrf_exempt
@require_POST
def logout_token(request: HttpRequest) -> JsonResponse:
    """A Logout Token for the person ``username`` (their ``sub`` and current ``sid`` unless
    ``with`` leaves one out), signed as the provider signs its tokens."""
    data = _body(request)
    user = get_user_model().objects.get(username=data["username"])
    names = data.get("with", ["sub", "sid"])
    token = validator.logout_token(
        client_id=data["client_id"],
        sub=str(user.pk) if "sub" in names else "",
        sid=validator.SESSIONS.get(user.pk, "") if "sid" in names else "",
        behaviour=data.get("behaviour", {}),
    )
    return JsonResponse({"logout_token": token})
