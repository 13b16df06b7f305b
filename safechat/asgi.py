"""ASGI entry point: Django's handler for HTTP, Channels for ``/ws/``.

Django's ASGI application is built first so that apps are loaded before the
WebSocket routing imports any model.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from safechat.body_limit import BodyLimitMiddleware  # noqa: E402
from safechat.routing import websocket_urlpatterns  # noqa: E402
from safechat.websocket_origin import ExactOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        # Bodies over the limit are refused before Django reads them (paths in
        # SAFECHAT_BODY_LIMIT_EXCLUDED_PATHS pass through untouched).
        "http": BodyLimitMiddleware(django_asgi_app),
        "websocket": ExactOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            settings.SAFECHAT_WS_ORIGINS,
        ),
    }
)
