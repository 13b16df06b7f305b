"""Passkeys and security keys through django-otp-webauthn's views, on our terms.

The library's ceremonies and JSON API are kept (its JS is served from static
files and reads its configuration from a JSON data block, so no inline script
runs). We change what happens around them: registration needs a recent
re-verification (or the first enrolment), completion goes through our services
(audit, session key rotation, lockout counts), and passkeys are a second factor
only (``OTP_WEBAUTHN_ALLOW_PASSWORDLESS_LOGIN = False``).
"""

from __future__ import annotations

import logging
from typing import Any

from axes.handlers.proxy import AxesProxyHandler
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django_otp_webauthn import exceptions
from django_otp_webauthn.utils import rewrite_exceptions
from django_otp_webauthn.views import (
    BeginCredentialAuthenticationView,
    BeginCredentialRegistrationView,
    CompleteCredentialAuthenticationView,
    CompleteCredentialRegistrationView,
)

from accounts.models import User
from accounts.services import factor_added, second_factor_accepted, second_factor_failed
from accounts.services.factors import (
    factor_change_allowed,
    passkey_registration_failed,
)
from accounts.services.sessions import session_hold
from safechat.actions import action_transaction

logger = logging.getLogger("accounts.webauthn")


class ReverificationNeeded(exceptions.OTPWebAuthnApiError):  # type: ignore[misc]
    status_code = 403
    default_detail = "Confirm it is you with a current second factor first."
    default_code = "reverification_required"


class LockedOut(exceptions.OTPWebAuthnApiError):  # type: ignore[misc]
    status_code = 403
    default_detail = "Too many failed attempts. Try again later."
    default_code = "locked_out"


# What malformed ceremony data raises inside the library: the client's mistake.
CLIENT_MISTAKES = (ValueError, KeyError, TypeError, AttributeError)


class _SafeErrors:
    """Malformed input is a 400 with a JSON body, never a 500."""

    def handle_exception(self, exc: Exception) -> JsonResponse:
        if isinstance(exc, exceptions.OTPWebAuthnApiError):
            return JsonResponse({"detail": str(exc), "code": exc.code}, status=exc.status_code)
        if isinstance(exc, CLIENT_MISTAKES):
            logger.info("malformed WebAuthn request: %s", type(exc).__name__)
            return JsonResponse(
                {"detail": "Malformed request.", "code": "malformed_request"}, status=400
            )
        raise exc


class _RegistrationGate:
    request: HttpRequest

    def check_can_register(self) -> None:
        user = self.request.user
        if not isinstance(user, User):
            raise exceptions.NotAuthenticated()
        if not factor_change_allowed(request=self.request, user=user):
            raise ReverificationNeeded()


class PasskeyRegistrationBeginView(_SafeErrors, _RegistrationGate, BeginCredentialRegistrationView):  # type: ignore[misc]
    pass


class PasskeyRegistrationCompleteView(
    _SafeErrors,
    _RegistrationGate,
    CompleteCredentialRegistrationView,  # type: ignore[misc]
):
    def post(self, *args: Any, **kwargs: Any) -> JsonResponse:
        user = self.get_user()
        state = self.get_state()
        try:
            with rewrite_exceptions(logger=logger), action_transaction():
                # The user row first, and the session still good under it: a passkey
                # registration in flight never survives a factor reset that committed
                # (refused, and recorded after the rollback).
                session_hold(request=self.request, user=user)
                device = self.get_helper().register_complete(
                    user=user, state=state, data=getattr(self.request, "data", {})
                )
                device.name = "Passkey"
                device.save(update_fields=["name"])
                factor_added(request=self.request, user=user, device=device)
        except (exceptions.OTPWebAuthnApiError, *CLIENT_MISTAKES) as exc:
            reason = getattr(exc, "code", None) or type(exc).__name__
            passkey_registration_failed(request=self.request, user=user, reason=str(reason))
            raise
        return JsonResponse({"id": device.pk})


class PasskeyAuthenticationBeginView(_SafeErrors, BeginCredentialAuthenticationView):  # type: ignore[misc]
    pass


class PasskeyAuthenticationCompleteView(_SafeErrors, CompleteCredentialAuthenticationView):  # type: ignore[misc]
    def post(self, *args: Any, **kwargs: Any) -> JsonResponse:
        user = self.get_user()
        if not isinstance(user, User):
            raise exceptions.PasswordlessLoginDisabled()
        if AxesProxyHandler.is_locked(self.request, {"username": user.username}):
            second_factor_failed(request=self.request, user=user, device=None, reason="locked")
            raise LockedOut()
        state = self.get_state()
        try:
            with rewrite_exceptions(logger=logger), transaction.atomic():
                device = self.get_helper().authenticate_complete(
                    user=user, state=state, data=getattr(self.request, "data", {})
                )
                self.check_device_usable(device)
                second_factor_accepted(request=self.request, user=user, device=device)
        except exceptions.OTPWebAuthnApiError as exc:
            error = second_factor_failed(
                request=self.request, user=user, device=None, reason=f"passkey:{exc.code}"
            )
            if error.locked:
                raise LockedOut() from exc
            raise
        return JsonResponse(self.get_success_data(device))
