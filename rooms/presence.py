"""Who is online: every open socket's presence, shared by all server processes.

Each socket records its state (``online`` or ``away``) under its user, with an expiry
that its heartbeats (the client's pings) push forward; a user's presence is the
liveliest state among their sockets, ``offline`` when none is left. A process that
dies without closing its sockets leaves entries that simply expire.

Kept in Redis when the cache is Redis (one hash per user), else in this process's
memory, which is the whole product on the embedded default.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable

from safechat.shared_cache import redis_keys

ONLINE, AWAY, OFFLINE = "online", "away", "offline"
# Sockets ping every 25 s (static/safechat/chat/socket.js); three missed pings and it is gone.
SOCKET_TTL_SECONDS = 90

_now = time.time  # wall clock: expiries are compared across processes

_local: dict[int, dict[str, tuple[str, float]]] = {}
_local_lock = threading.Lock()


def _name(user_id: int) -> str:
    return f"rooms:presence:{user_id}"


def _aggregate(entries: Iterable[tuple[str, float]], now: float) -> str:
    states = {state for state, expires in entries if expires > now}
    if ONLINE in states:
        return ONLINE
    return AWAY if AWAY in states else OFFLINE


def _decode(raw: dict[bytes, bytes]) -> list[tuple[str, float]]:
    entries = []
    for value in raw.values():
        state, _, expires = value.decode().partition(":")
        entries.append((state, float(expires)))
    return entries


def presence_set(*, user_id: int, socket_id: str, state: str) -> str:
    """Record (or refresh) one socket's state; returns the user's presence after it."""
    if state not in (ONLINE, AWAY):
        raise ValueError("a socket is online or away")
    now = _now()
    entry = f"{state}:{now + SOCKET_TTL_SECONDS}"
    redis = redis_keys(_name(user_id))
    if redis is not None:
        client, (key,) = redis
        pipe = client.pipeline(transaction=True)
        pipe.hset(key, socket_id, entry)
        pipe.expire(key, SOCKET_TTL_SECONDS * 2)
        pipe.hgetall(key)
        raw = pipe.execute()[-1]
        return _aggregate(_decode(raw), now)
    with _local_lock:
        sockets = _local.setdefault(user_id, {})
        sockets[socket_id] = (state, now + SOCKET_TTL_SECONDS)
        return _aggregate(sockets.values(), now)


def presence_clear(*, user_id: int, socket_id: str) -> str:
    """Forget a closed socket; returns the user's presence without it."""
    now = _now()
    redis = redis_keys(_name(user_id))
    if redis is not None:
        client, (key,) = redis
        pipe = client.pipeline(transaction=True)
        pipe.hdel(key, socket_id)
        pipe.hgetall(key)
        raw = pipe.execute()[-1]
        return _aggregate(_decode(raw), now)
    with _local_lock:
        sockets = _local.get(user_id, {})
        sockets.pop(socket_id, None)
        if not sockets:
            _local.pop(user_id, None)
        return _aggregate(sockets.values(), now)


def presence_of(*, user_ids: Iterable[int]) -> dict[int, str]:
    """The presence of each user who is online or away (the others are offline)."""
    ids = list(dict.fromkeys(user_ids))
    now = _now()
    redis = redis_keys(*(_name(user_id) for user_id in ids))
    if redis is not None:
        if not ids:
            return {}
        client, keys = redis
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        states = {
            uid: _aggregate(_decode(raw), now) for uid, raw in zip(ids, pipe.execute(), strict=True)
        }
    else:
        with _local_lock:
            states = {uid: _aggregate(_local.get(uid, {}).values(), now) for uid in ids}
    return {uid: state for uid, state in states.items() if state != OFFLINE}


def presence_sockets_of(*, user_id: int) -> list[str]:
    """The ids (channel names) of ``user_id``'s sockets that are recorded, live or not."""
    redis = redis_keys(_name(user_id))
    if redis is not None:
        client, (key,) = redis
        return sorted(raw.decode() for raw in client.hkeys(key))
    with _local_lock:
        return sorted(_local.get(user_id, {}))


def presence_reset() -> None:
    """Forget every socket of this process's in-memory registry (tests)."""
    with _local_lock:
        _local.clear()
