"""The provider's routes: django-oauth-toolkit under /o/, the tests' controls, health."""

from __future__ import annotations

from django.urls import include, path

from tests.oidc_provider import control

urlpatterns = [
    path("o/", include("oauth2_provider.urls", namespace="oauth2_provider")),
    path("healthz", control.healthz),
    path("control/client/", control.client_register),
    path("control/user/", control.user_create),
    path("control/login/", control.user_sign_in),
    path("control/behaviour/", control.behaviour_set),
    path("control/logout-token/", control.logout_token),
]
