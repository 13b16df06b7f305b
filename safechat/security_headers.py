"""The security headers of every HTTP response, those made outside Django too.

Django's middleware adds them to what Django answers (``SecurityMiddleware``,
``XFrameOptionsMiddleware``, django-csp's ``CSPMiddleware``). Some answers are made before
Django runs: the body limit's 413 and 400 (``safechat.body_limit``) and the upload
handler's refusals (``files.asgi``). :class:`SecurityHeadersMiddleware`, outermost for
HTTP (``safechat.asgi``), gives every response each of these headers it lacks, with the
values the settings give Django's middleware, so no answer goes without
``X-Content-Type-Options: nosniff`` or the site's Content-Security-Policy. A header a
response sets itself (the documentation pages' CSP) is left as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from csp.utils import build_policy
from django.conf import settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[..., Awaitable[None]]  # as safechat.body_limit: any ASGI 3 callable


def _is_secure(scope: Scope) -> bool:
    """Whether the request (or WebSocket handshake) came over TLS, as
    ``HttpRequest.is_secure`` decides it."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy:
        return False
    meta_name, expected = proxy
    wanted = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode()
    return any(
        name.lower() == wanted and value.decode("latin-1").split(",")[0].strip() == expected
        for name, value in scope.get("headers", [])
    )


def security_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The headers Django's security middleware would add to a response to ``scope``:
    ``X-Content-Type-Options``, ``Referrer-Policy``, ``Cross-Origin-Opener-Policy``,
    ``X-Frame-Options``, ``Content-Security-Policy`` and, over HTTPS,
    ``Strict-Transport-Security``; names in lower case, as ASGI sends them."""
    headers: list[tuple[str, str]] = []
    if settings.SECURE_CONTENT_TYPE_NOSNIFF:
        headers.append(("x-content-type-options", "nosniff"))
    referrer = settings.SECURE_REFERRER_POLICY
    if referrer:
        value = referrer if isinstance(referrer, str) else ",".join(referrer)
        headers.append(("referrer-policy", value))
    if settings.SECURE_CROSS_ORIGIN_OPENER_POLICY:
        headers.append(("cross-origin-opener-policy", settings.SECURE_CROSS_ORIGIN_OPENER_POLICY))
    headers.append(("x-frame-options", str(getattr(settings, "X_FRAME_OPTIONS", "DENY"))))
    policy = build_policy()
    if policy:
        headers.append(("content-security-policy", policy))
    if settings.SECURE_HSTS_SECONDS and _is_secure(scope):
        hsts = f"max-age={settings.SECURE_HSTS_SECONDS}"
        if settings.SECURE_HSTS_INCLUDE_SUBDOMAINS:
            hsts += "; includeSubDomains"
        if settings.SECURE_HSTS_PRELOAD:
            hsts += "; preload"
        headers.append(("strict-transport-security", hsts))
    return [(name.encode(), value.encode("latin-1")) for name, value in headers]


class SecurityHeadersMiddleware:
    """Wraps an ASGI HTTP application; see the module's docstring for what it guarantees."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {bytes(name).lower() for name, _ in headers}
                missing = [h for h in security_headers(scope) if h[0] not in present]
                if missing:
                    message = {**message, "headers": [*headers, *missing]}
            await send(message)

        await self.app(scope, receive, send_secured)
