"""django-otp-webauthn's endpoints, served by our subclasses under its namespace.

The namespace stays ``otp_webauthn`` so the library's template tags resolve them.
"""

from django.urls import path
from django.views.i18n import JavaScriptCatalog

from accounts import webauthn

app_name = "otp_webauthn"

urlpatterns = [
    path(
        "registration/begin/",
        webauthn.PasskeyRegistrationBeginView.as_view(),
        name="credential-registration-begin",
    ),
    path(
        "registration/complete/",
        webauthn.PasskeyRegistrationCompleteView.as_view(),
        name="credential-registration-complete",
    ),
    path(
        "authentication/begin/",
        webauthn.PasskeyAuthenticationBeginView.as_view(),
        name="credential-authentication-begin",
    ),
    path(
        "authentication/complete/",
        webauthn.PasskeyAuthenticationCompleteView.as_view(),
        name="credential-authentication-complete",
    ),
    path(
        "jsi18n/",
        JavaScriptCatalog.as_view(packages=["django_otp_webauthn"]),
        name="js-i18n-catalog",
    ),
]
