"""Portal pages of accounts, one module per area. Thin: parse the form, call a service,
render or redirect. ``accounts.urls`` routes to the names re-exported here."""

from accounts.views.administration import (
    admin_identity_link,
    admin_identity_unlink,
    admin_invitation_revoke,
    admin_lockout_lift,
    admin_user_action,
    admin_users,
)
from accounts.views.factors import (
    backup_codes,
    enrol,
    factor_remove,
    factor_rename,
    factors,
    passkey_add,
)
from accounts.views.federation import (
    oidc_backchannel_logout,
    saml_acs,
    saml_metadata,
    saml_slo,
    saml_start,
    sso_callback,
    sso_start,
)
from accounts.views.home import home
from accounts.views.links import bootstrap, invitation
from accounts.views.passwords import password_change, password_reset_confirm, password_reset_request
from accounts.views.profile import profile
from accounts.views.sessions import session_end, sessions
from accounts.views.sign_in import reverify, second_factor, sign_in, sign_out
from accounts.views.tokens import token_revoke, tokens

__all__ = [
    "admin_identity_link",
    "admin_identity_unlink",
    "admin_invitation_revoke",
    "admin_lockout_lift",
    "admin_user_action",
    "admin_users",
    "backup_codes",
    "bootstrap",
    "enrol",
    "factor_remove",
    "factor_rename",
    "factors",
    "home",
    "invitation",
    "oidc_backchannel_logout",
    "passkey_add",
    "password_change",
    "password_reset_confirm",
    "password_reset_request",
    "profile",
    "reverify",
    "saml_acs",
    "saml_metadata",
    "saml_slo",
    "saml_start",
    "second_factor",
    "session_end",
    "sessions",
    "sign_in",
    "sign_out",
    "sso_callback",
    "sso_start",
    "token_revoke",
    "tokens",
]
