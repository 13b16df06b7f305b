"""API permissions: a verified second factor for sessions, the right scope for tokens.

Imported by DRF while ``rest_framework.views`` loads: keep imports light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rest_framework.permissions import BasePermission

from accounts.scopes import scope_allows, scope_for_method
from accounts.session_policy import request_verified

if TYPE_CHECKING:
    from rest_framework.request import Request

    from accounts.models import ApiToken


def request_token(request: Request) -> ApiToken | None:
    from accounts.models import ApiToken

    return request.auth if isinstance(request.auth, ApiToken) else None


class IsVerifiedOrToken(BasePermission):
    """A session must have passed the second factor (tokens were minted by a verified user)."""

    message = "Second factor required."

    def has_permission(self, request: Request, view: Any) -> bool:
        if request_token(request) is not None:
            return True
        return request_verified(request)


class TokenHasScope(BasePermission):
    """Scopes by method: read = safe methods, write = any method, admin = also the views
    that set ``required_token_scope = "admin"``; audit = only the safe methods of the views
    that set ``required_token_scope = "audit"`` (``accounts.scopes``).

    Sessions are not limited by scope; a token never exceeds its user's permissions
    because the view's own permission checks run against that user.
    """

    message = "This token's scope does not allow that."

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request_token(request)
        if token is None:
            return True
        needed = getattr(view, "required_token_scope", None) or scope_for_method(
            request.method or ""
        )
        return scope_allows(token.scope, str(needed), request.method or "")
