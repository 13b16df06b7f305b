"""The rooms side of the WebSocket, split by concern.

* :mod:`.handlers`: the consumer's room mixin: subscriptions, client frames, room events;
* :mod:`.protocol`: reading frames, answering mistakes with error frames, flood and
  catch-up pacing;
* :mod:`.fanout`: a new message opened for each reader with their own key copy;
* :mod:`.database`: the synchronous reads and writes, run off the event loop.

The socket's life and its right to live are in ``rooms.consumers``; the frames are
documented in docs/realtime.md.
"""

from rooms.socket.database import in_pool
from rooms.socket.handlers import RoomSocketMixin

__all__ = ["RoomSocketMixin", "in_pool"]
