"""ASGI application for ``benchmarks.ws_load``: SafeChat and its two baselines in one process.

``/ws/`` is SafeChat's own socket, exactly as in ``safechat.asgi``; ``/plain/<room>/``
and ``/persisted/<room>/`` are the baseline chats of ``benchmarks.baseline_app``.
All three run behind the same origin check and session middleware, with the same
settings, so the benchmark compares the consumers and nothing else.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import OriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from benchmarks.baseline_app.consumers import (  # noqa: E402
    PersistedChatConsumer,
    PlainChatConsumer,
)
from safechat.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginValidator(
            AuthMiddlewareStack(
                URLRouter(
                    [
                        *websocket_urlpatterns,
                        path("plain/<int:room>/", PlainChatConsumer.as_asgi()),
                        path("persisted/<int:room>/", PersistedChatConsumer.as_asgi()),
                    ]
                )
            ),
            settings.SAFECHAT_WS_ALLOWED_ORIGINS,
        ),
    }
)
