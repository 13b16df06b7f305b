"""The Django admin, open only to staff who passed the second factor.

django-otp's ``OTPAdminSite`` refuses unverified sessions; its own login form is
replaced by the portal's sign-in, so there is one throttled, audited way in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse
from django_otp.admin import OTPAdminSite


def _selection_invalid(view: Callable[..., Any], request: HttpRequest) -> bool:
    """Whether an admin action's POST names a row id its model could not hold (not a
    number, or out of the column's range): Django would fail on it with a 500."""
    selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
    model_admin = getattr(view, "__self__", None)
    if request.method != "POST" or not selected or not isinstance(model_admin, admin.ModelAdmin):
        return False
    pk = model_admin.model._meta.pk
    assert pk is not None  # noqa: S101 - every model has a primary key
    try:
        for value in selected:
            pk.clean(value, None)
    except ValidationError:
        return True
    return False


class SafeChatAdminSite(OTPAdminSite):  # type: ignore[misc]
    def admin_view(self, view: Callable[..., Any], cacheable: bool = False) -> Any:
        """Django's, and a selection of rows no id can be is answered 400, not a 500."""

        @functools.wraps(view)
        def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if _selection_invalid(view, request):
                return HttpResponseBadRequest("The selection is not valid.")
            return view(request, *args, **kwargs)

        return super().admin_view(checked, cacheable)

    def login(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        next_url = request.GET.get("next") or reverse("admin:index")
        if request.user.is_authenticated:
            # Signed in and verified but not staff: the admin is simply not for them.
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return redirect_to_login(next_url, settings.LOGIN_URL)

    def logout(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Sign out through the service, so the session row ends and its sockets close."""
        from django.shortcuts import redirect

        from accounts.services import sign_out

        if request.method == "POST":
            sign_out(request=request)
        return redirect(settings.LOGIN_URL)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """The portal's audited password change, never Django's own form.

        Django's form would change the password outside ``accounts.services``: no
        ``auth.password.changed`` event, and other sessions, sockets and the credential
        epoch left as they were. Nothing is read from the request here.
        """
        from django.shortcuts import redirect

        return redirect("accounts:password-change")

    def password_change_done(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from django.shortcuts import redirect

        return redirect("accounts:password-change")
