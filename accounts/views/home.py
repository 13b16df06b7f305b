"""The account's own page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from accounts import selectors
from accounts.roles import MANAGE_USERS
from accounts.views._common import _user


@never_cache
def home(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    return render(
        request,
        "accounts/home.html",
        {
            "roles": selectors.user_roles(user=user),
            "is_security_admin": user.has_perm(MANAGE_USERS),
        },
    )
