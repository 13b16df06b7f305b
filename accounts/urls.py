from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("", views.home, name="home"),
    path("sign-in/", views.sign_in, name="sign-in"),
    path("sign-out/", views.sign_out, name="sign-out"),
    path("sso/<str:provider_key>/start/", views.sso_start, name="sso-start"),
    path("sso/<str:provider_key>/callback/", views.sso_callback, name="sso-callback"),
    path(
        "oidc/<str:provider_key>/backchannel-logout/",
        views.oidc_backchannel_logout,
        name="oidc-backchannel-logout",
    ),
    path("saml/metadata/", views.saml_metadata, name="saml-metadata"),
    path("saml/<str:provider_key>/start/", views.saml_start, name="saml-start"),
    path("saml/<str:provider_key>/acs/", views.saml_acs, name="saml-acs"),
    path("saml/<str:provider_key>/slo/", views.saml_slo, name="saml-slo"),
    path("second-factor/", views.second_factor, name="second-factor"),
    path("reverify/", views.reverify, name="reverify"),
    path("enrol/", views.enrol, name="enrol"),
    path("factors/", views.factors, name="factors"),
    path("factors/passkey/", views.passkey_add, name="passkey-add"),
    path("factors/backup-codes/", views.backup_codes, name="backup-codes"),
    path("factors/<path:persistent_id>/rename/", views.factor_rename, name="factor-rename"),
    path("factors/<path:persistent_id>/remove/", views.factor_remove, name="factor-remove"),
    path("profile/", views.profile, name="profile"),
    path("sessions/", views.sessions, name="sessions"),
    path("sessions/<int:session_id>/end/", views.session_end, name="session-end"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke, name="token-revoke"),
    path("password/", views.password_change, name="password-change"),
    path("password-reset/", views.password_reset_request, name="password-reset-request"),
    path(
        "password-reset/<str:uidb64>/<str:token>/",
        views.password_reset_confirm,
        name="password-reset-confirm",
    ),
    path("bootstrap/<str:token>/", views.bootstrap, name="bootstrap"),
    path("invitation/<str:token>/", views.invitation, name="invitation"),
    path("admin/users/", views.admin_users, name="admin-users"),
    path(
        "admin/users/<int:user_id>/<str:action>/",
        views.admin_user_action,
        name="admin-user-action",
    ),
    path(
        "admin/invitations/<int:invitation_id>/revoke/",
        views.admin_invitation_revoke,
        name="admin-invitation-revoke",
    ),
    path("admin/lockouts/lift/", views.admin_lockout_lift, name="admin-lockout-lift"),
    path("admin/identities/link/", views.admin_identity_link, name="admin-identity-link"),
    path(
        "admin/identities/<int:identity_id>/unlink/",
        views.admin_identity_unlink,
        name="admin-identity-unlink",
    ),
]
