"""The person's sessions: the list, and ending one."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.session_policy import session_key_hash
from accounts.views._common import _user, raise_404


@never_cache
def sessions(request: HttpRequest) -> HttpResponse:
    key = request.session.session_key or ""
    return render(
        request,
        "accounts/sessions.html",
        {
            "sessions": selectors.user_sessions_active(user=_user(request)),
            "current_hash": session_key_hash(key) if key else "",
        },
    )


@require_POST
def session_end(request: HttpRequest, session_id: int) -> HttpResponse:
    row = selectors.user_session_get(user=_user(request), session_id=session_id)
    if row is None:
        raise_404()
    current = request.session.session_key
    if current and row.key_hash == session_key_hash(current):
        services.sign_out(request=request)
        return redirect("accounts:sign-in")
    services.session_end(actor=_user(request), session=row, reason="ended_by_user", request=request)
    messages.success(request, "The session was ended.")
    return redirect("accounts:sessions")
