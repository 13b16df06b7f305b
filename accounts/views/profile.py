"""The person's own profile: the display name others see beside their username."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from accounts import forms, services
from accounts.views._common import _user, service_errors


@never_cache
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    form = forms.ProfileForm(
        request.POST or None,
        initial={"first_name": user.first_name, "last_name": user.last_name},
    )
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.user_profile_update(
                    actor=user,
                    first_name=form.cleaned_data["first_name"],
                    last_name=form.cleaned_data["last_name"],
                    request=request,
                )
            except ValidationError as exc:
                errors, status = service_errors(form, exc), 400
            else:
                messages.success(request, "Your name is saved. Your rooms show it now.")
                return redirect("accounts:profile")
        else:
            status = 400
    return render(request, "accounts/profile.html", {"form": form, "errors": errors}, status=status)
