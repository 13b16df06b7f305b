"""The identity providers configured for federated sign-in, of both protocols (docs/sso.md).

OpenID Connect providers (``SAFECHAT_OIDC_PROVIDERS``) and SAML identity providers
(``SAFECHAT_SAML_IDPS``) share one space of keys (settings refuse a key or an issuer used
twice), so a link, an audit event or a URL names a provider by its key alone.
"""

from __future__ import annotations

from django.conf import settings

from accounts.sso import FederatedProvider


def federated_providers() -> tuple[FederatedProvider, ...]:
    """Every configured provider, OpenID Connect first, each in configuration order."""
    return (*settings.SAFECHAT_OIDC_PROVIDERS, *settings.SAFECHAT_SAML_IDPS)


def federated_provider_get(key: str) -> FederatedProvider | None:
    """The configured provider of either protocol with ``key``, or None."""
    return next((p for p in federated_providers() if p.key == key), None)
