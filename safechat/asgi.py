"""ASGI entry point: Django's handler for HTTP, Channels for ``/ws/``.

Django's ASGI application is built first so that apps are loaded before the
WebSocket routing imports any model. The file vault's upload paths (tus) are served by
their own handler in front of Django's (``files.asgi``): it never spools a request body.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "safechat.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402

from files.asgi import upload_mount  # noqa: E402
from files.scanner import scanner_check_at_start  # noqa: E402
from safechat.body_limit import BodyLimitMiddleware  # noqa: E402
from safechat.middleware import request_id_asgi  # noqa: E402
from safechat.routing import websocket_urlpatterns  # noqa: E402
from safechat.security_headers import SecurityHeadersMiddleware  # noqa: E402
from safechat.websocket_origin import ExactOriginValidator  # noqa: E402

# Bodies over the limit are refused before Django reads them; the file vault's tus paths
# go to their own streaming handler first (it has its own limit, checked as bytes
# arrive). Whatever that handler does not serve reaches Django under the body limit.
# Outermost, the request id is chosen once for all of it (the access line included); then
# every answer gets the security headers it lacks (those made before Django).
http_app = request_id_asgi(
    SecurityHeadersMiddleware(upload_mount(BodyLimitMiddleware(django_asgi_app)))
)

application = ProtocolTypeRouter(
    {
        "http": http_app,
        "websocket": ExactOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            settings.SAFECHAT_WS_ORIGINS,
        ),
    }
)

# No scanner, or one that does not answer: said once in this process's log, at start.
scanner_check_at_start()
