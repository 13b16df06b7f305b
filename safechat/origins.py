"""Web origins (RFC 6454) for the WebSocket handshake: scheme, host and port, exactly.

Django-free, so settings can parse ``SAFECHAT_WS_ALLOWED_ORIGINS`` before Django is
configured. Channels' ``OriginValidator`` compares hosts only (any scheme, any port);
a browser tab on ``http://localhost:9999`` is another origin than the portal on
``http://localhost:8000`` and must not open a socket with the portal's cookie.
"""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


class OriginError(ValueError):
    """A configured value is not an origin (``scheme://host[:port]``)."""


def origin_parse(value: str) -> Origin | None:
    """``(scheme, host, port)`` of an ``Origin`` header value, normalised; None if not one.

    Lower-cases scheme and host, fills the scheme's default port, keeps IPv6 literals
    in brackets. A path, query, fragment, user info, an opaque origin (``null``) or a
    scheme other than http/https is not an origin here.
    """
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in DEFAULT_PORTS or not host or "*" in host or parts.username or parts.password:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    if ":" in host:
        host = f"[{host}]"
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def allowed_origins_parse(values: list[str]) -> frozenset[Origin]:
    """The configured origins; raises :class:`OriginError` naming the first bad value.

    A wildcard or a bare host is refused: an origin names its scheme (and port).
    """
    origins: set[Origin] = set()
    for value in values:
        origin = origin_parse(value)
        if origin is None:
            raise OriginError(
                f"SAFECHAT_WS_ALLOWED_ORIGINS: {value!r} is not an origin "
                "(scheme://host[:port], e.g. https://chat.example.com; never a wildcard)"
            )
        origins.add(origin)
    return frozenset(origins)


def default_origins(*, hosts: list[str], production: bool, port: str) -> list[str]:
    """The portal's origins when none are configured: ``https://<host>`` in production,
    ``http://<host>:<port>`` in development (the port ``make run`` serves on)."""
    usable = [h for h in hosts if h and not h.startswith("*") and not h.startswith(".")]
    if production:
        return [f"https://{h}" for h in usable]
    return [f"http://{h}:{port}" for h in usable]
