"""DRF authentication by API token: ``Authorization: Bearer sct_<prefix>_<secret>``.

Imported by DRF while ``rest_framework.views`` loads: models and services are
imported when a request is authenticated, not at import time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from safechat.request_context import acting_token_set

if TYPE_CHECKING:
    from rest_framework.request import Request

    from accounts.models import ApiToken, User

KEYWORD = b"bearer"


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """A token acts as its user, so it never exceeds that user's permissions.

    ``request.auth`` is the :class:`ApiToken`; ``TokenHasScope`` checks its scope.
    """

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        from accounts.services.tokens import (
            TokenAttemptsThrottled,
            TokenRefused,
            api_token_authenticate,
        )

        raw = authentication.get_authorization_header(request)
        if not raw:
            return None
        header = raw.split()
        presented: str | None = None
        # Anything but one ASCII ``Bearer`` credential is refused as malformed, audited
        # and counted like a wrong token (no other scheme is accepted here).
        if len(header) == 2 and header[0].lower() == KEYWORD:
            try:
                presented = header[1].decode("ascii")
            except UnicodeDecodeError:
                presented = None
        try:
            token = api_token_authenticate(presented=presented, request=request._request)
        except TokenRefused:
            raise exceptions.AuthenticationFailed("Invalid token.") from None
        except TokenAttemptsThrottled as throttled:
            raise exceptions.Throttled(wait=throttled.retry_after) from None
        acting_token_set(token.pk)  # every audit event of this request names the token
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "accounts.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "An API token (`sct_...`) created in the portal or the API; "
            "its scope (read, write, admin or audit) limits what it may do (docs/api.md).",
        }


class SessionCookieScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    """The portal's session as the schema's ``cookieAuth``: the cookie's name as this
    deployment sets it, and both names and the CSRF rule in its description."""

    target_class = "rest_framework.authentication.SessionAuthentication"
    name = "cookieAuth"
    priority = 1  # over drf-spectacular's own, which names the cookie only

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The portal's session, signed in with the second factor. In "
            "production the cookies are `__Host-sessionid` and `__Host-csrftoken` "
            "(`sessionid` and `csrftoken` in development). A POST, PATCH or DELETE carries "
            "the CSRF cookie's value in `X-CSRFToken`, from the portal's own origin "
            "(docs/api.md).",
        }
