"""Key changes that every process must see, after commit.

A shred, a member's removal, an edited or deleted message and a new master-key version
change what a process may keep in memory: epoch keys, "this user opened it" marks,
HTML rendered from plaintext, the provider's list of master-key versions. The service
that makes the change calls one of the functions below inside its transaction: the
change is applied in this process at once (an early eviction only costs a cache miss),
and again after commit, when it is also published on Redis (pub/sub) to every other
process of the deployment, which applies it too. The second local application drops
anything re-cached from the old rows between the change and its commit.

Redis pub/sub delivers at most once. So a process trusts its key caches only while its
subscription is live: until it has subscribed, and after it lost the connection (when
it also drops everything it cached, as it may have missed an eviction), caches answer
"not cached" and keys are opened from the database. The embedded default (no
``REDIS_URL``) serves from one process; there the change is applied in that process only.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import connections, transaction

logger = logging.getLogger(__name__)

EPOCH_SHREDDED = "epoch-shredded"
MEMBER_REVOKED = "member-revoked"
MESSAGE_CHANGED = "message-changed"
MASTER_KEY_CHANGED = "master-key-changed"
EVERYTHING_STALE = "everything-stale"
_KINDS = frozenset({EPOCH_SHREDDED, MEMBER_REVOKED, MESSAGE_CHANGED, MASTER_KEY_CHANGED})

_handlers: dict[str, list[Callable[..., None]]] = {}
_RECONNECT_SECONDS = 1.0


def _register(kind: str, handler: Callable[..., None]) -> Callable[..., None]:
    handlers = _handlers.setdefault(kind, [])
    if handler not in handlers:
        handlers.append(handler)
    return handler


def on_epoch_shredded(handler: Callable[..., None]) -> Callable[..., None]:
    """``handler(room_id=, number=)`` runs in every process after a shred commits."""
    return _register(EPOCH_SHREDDED, handler)


def on_member_revoked(handler: Callable[..., None]) -> Callable[..., None]:
    """``handler(room_id=, user_id=)`` runs in every process after a removal commits."""
    return _register(MEMBER_REVOKED, handler)


def on_message_changed(handler: Callable[..., None]) -> Callable[..., None]:
    """``handler(message_id=)`` runs in every process after an edit or delete commits."""
    return _register(MESSAGE_CHANGED, handler)


def on_master_key_changed(handler: Callable[..., None]) -> Callable[..., None]:
    """``handler(version=)`` runs in every process when a master-key version is published."""
    return _register(MASTER_KEY_CHANGED, handler)


def on_everything_stale(handler: Callable[[], None]) -> Callable[[], None]:
    """``handler()`` runs when this process may have missed changes (subscription lost)."""
    return _register(EVERYTHING_STALE, handler)


def _apply(kind: str, fields: dict[str, Any]) -> None:
    for handler in list(_handlers.get(kind, ())):
        try:
            handler(**fields)
        except Exception:
            logger.exception("key change handler for %s failed", kind)


# --- publishing ----------------------------------------------------------------------------


def epoch_shredded(*, room_id: int, number: int) -> None:
    _publish_on_commit(EPOCH_SHREDDED, room_id=room_id, number=number)


def member_revoked(*, room_id: int, user_id: int) -> None:
    _publish_on_commit(MEMBER_REVOKED, room_id=room_id, user_id=user_id)


def message_changed(*, message_id: int) -> None:
    _publish_on_commit(MESSAGE_CHANGED, message_id=message_id)


def master_key_changed(*, version: int) -> None:
    _publish_on_commit(MASTER_KEY_CHANGED, version=version)


def _publish_on_commit(kind: str, **fields: Any) -> None:
    # Here at once as well: evicting early only costs a cache miss, and the second
    # eviction after commit drops whatever was re-cached from the rows before they changed.
    _apply(kind, fields)
    transaction.on_commit(lambda: publish(kind, **fields))


def channel_name() -> str:
    """One channel per database: deployments (and test runs) sharing a Redis never mix."""
    db = connections["default"].settings_dict
    where = f"{db.get('HOST') or ''}:{db.get('PORT') or ''}/{db.get('NAME')}"
    return f"safechat:keyring:{connections['default'].vendor}:{where}"


def publish(kind: str, **fields: Any) -> None:
    """Apply a change here and send it to every other process (now; callers defer to commit)."""
    if kind not in _KINDS:
        raise ValueError(f"unknown key change {kind!r}")
    _apply(kind, fields)
    if not settings.REDIS_URL:
        return
    message = json.dumps({"kind": kind, "fields": fields, "origin": _origin()})
    try:
        _client().publish(channel_name(), message)
    except Exception:
        # Other processes then serve what they cached for at most the cache TTL.
        logger.exception("could not publish the key change %s to other processes", kind)


def _origin() -> str:
    return f"{os.uname().nodename}:{os.getpid()}:{id(_subscriber_state)}"


_clients: dict[tuple[int, str], Any] = {}


def _client() -> Any:
    """This process's Redis client (thread-safe, pooled); a forked child makes its own."""
    import redis

    key = (os.getpid(), str(settings.REDIS_URL))
    client = _clients.get(key)
    if client is None:
        _clients.clear()
        client = redis.Redis.from_url(key[1], socket_timeout=5)
        _clients[key] = client
    return client


# --- receiving -----------------------------------------------------------------------------


class _SubscriberState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live = threading.Event()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.stop = threading.Event()


_subscriber_state = _SubscriberState()


def caching_allowed() -> bool:
    """May this process serve keys from memory? Always without Redis; with Redis only
    while subscribed to key changes (starting the subscription on first call)."""
    if not settings.REDIS_URL:
        return True
    _ensure_subscriber()
    return _subscriber_state.live.is_set()


def _ensure_subscriber() -> None:
    state = _subscriber_state
    thread = state.thread
    if thread is not None and thread.is_alive() and state.pid == os.getpid():
        return
    with state.lock:
        if state.thread is not None and state.thread.is_alive() and state.pid == os.getpid():
            return
        state.live.clear()  # a forked child inherits no subscription
        state.stop.clear()
        state.pid = os.getpid()
        state.thread = threading.Thread(target=_listen, name="safechat-key-changes", daemon=True)
        state.thread.start()


def stop_subscriber(timeout: float = 5.0) -> None:
    """Stop listening (tests); caches are not trusted again until a new subscription."""
    state = _subscriber_state
    state.stop.set()
    state.live.clear()
    thread = state.thread
    if thread is not None:
        thread.join(timeout)
    state.thread = None


def wait_until_subscribed(timeout: float = 5.0) -> bool:
    """True once this process receives key changes (at once without Redis)."""
    if not settings.REDIS_URL:
        return True
    _ensure_subscriber()
    return _subscriber_state.live.wait(timeout)


def _listen() -> None:
    state = _subscriber_state
    channel = channel_name()
    while not state.stop.is_set():
        pubsub = None
        try:
            pubsub = _client().pubsub()
            pubsub.subscribe(channel)
            while not state.stop.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is None:
                    continue
                if message["type"] == "subscribe":
                    # Whatever was cached before may have missed an eviction.
                    _apply(EVERYTHING_STALE, {})
                    state.live.set()
                elif message["type"] == "message":
                    _receive(message["data"])
        except Exception:
            if state.live.is_set():
                logger.warning("key change subscription lost; caches off until it is back")
            state.live.clear()
            _apply(EVERYTHING_STALE, {})
            state.stop.wait(_RECONNECT_SECONDS)
        finally:
            state.live.clear()
            if pubsub is not None:
                try:
                    pubsub.close()
                except Exception:  # closing a dead connection
                    logger.debug("closing the key change subscription failed", exc_info=True)
    state.live.clear()


def _receive(data: bytes | str) -> None:
    try:
        message = json.loads(data)
        kind = message["kind"]
        fields = message["fields"]
    except (ValueError, KeyError, TypeError):
        logger.warning("ignored a malformed key change message")
        return
    if message.get("origin") == _origin():
        return  # applied when published
    if kind not in _KINDS or not isinstance(fields, dict):
        logger.warning("ignored an unknown key change message")
        return
    _apply(kind, fields)


__all__ = [
    "caching_allowed",
    "channel_name",
    "epoch_shredded",
    "master_key_changed",
    "member_revoked",
    "message_changed",
    "on_epoch_shredded",
    "on_everything_stale",
    "on_master_key_changed",
    "on_member_revoked",
    "on_message_changed",
    "publish",
    "stop_subscriber",
    "wait_until_subscribed",
]
