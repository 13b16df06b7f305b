"""The WebSocket's frame limit, one number for the server that enforces it and the page
that measures against it.

Every SafeChat web server runs uvicorn with ``--ws-max-size`` set to
``WEBSOCKET_MAX_FRAME_BYTES`` (``safechat.supervise``, deploy/systemd/safechat-web.service):
a frame past it closes the socket (1009). Frames carry at most a 16 KiB message; 64 KiB
leaves room for JSON escaping. The chat page's configuration carries it (``rooms.views``),
so the composer refuses a post whose frame would pass it, with its reason, before sending.
"""

from __future__ import annotations

WEBSOCKET_MAX_FRAME_BYTES = 65536  # bytes of one WebSocket message, as uvicorn counts them
