"""The HTML of recent new messages, shared by the readers of one process, for a short time.

A message fanned out to many sockets is rendered once per process (per event loop) by its
first reader, who opened it with their own key copy, and reused by the others (each of
whom also opened it). Rendered HTML is derived from plaintext, so it is kept like a key:
in this process's memory only, for at most ``SAFECHAT_KEY_CACHE_SECONDS``, and dropped in
every process as soon as the message is edited or deleted or its epoch is shredded
(``safechat.keyring.events``). Entries are per revision, so an edit never serves old text.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial

from django.conf import settings

from rooms.markdown import MentionTarget, render_markdown
from safechat.keyring import events

# Texts longer than this are rendered off the event loop (16 KiB of Markdown takes ~20 ms).
INLINE_RENDER_MAX = 2048
RENDERS_KEPT = 256

_Key = tuple[asyncio.AbstractEventLoop, int, int]


@dataclass(frozen=True)
class _Entry:
    expires: float
    room_id: int
    epoch: int
    html: asyncio.Future[str]


_renders: OrderedDict[_Key, _Entry] = OrderedDict()
_lock = threading.Lock()


async def rendered_once(
    *,
    message_id: int,
    revision: int,
    room_id: int,
    epoch: int,
    text: str,
    mentions: Mapping[str, MentionTarget] | None = None,
) -> str:
    """The HTML of ``text`` (the members it names, ``mentions``, marked up), rendered once
    per process while it is recent. The HTML is the same for every reader: the reader's
    own mentions are told apart by the client (``data-user-id``)."""
    loop = asyncio.get_running_loop()
    key = (loop, message_id, revision)
    now = time.monotonic()
    with _lock:
        entry = _renders.get(key)
        if entry is not None and entry.expires <= now:
            del _renders[key]
            entry = None
    if entry is not None:
        pending = entry.html
    else:
        if len(text) <= INLINE_RENDER_MAX:
            pending = loop.create_future()
            pending.set_result(render_markdown(text, mentions=mentions))
        else:
            pending = loop.run_in_executor(None, partial(render_markdown, text, mentions=mentions))
        ttl = float(settings.SAFECHAT_KEY_CACHE_SECONDS)
        if ttl > 0:
            with _lock:
                _renders[key] = _Entry(now + ttl, room_id, epoch, pending)
                _trim(now)
    return await asyncio.shield(pending)  # a socket closing must not cancel the others' render


def _trim(now: float) -> None:
    # Entries are appended in time order: expired ones are at the front.
    while _renders:
        oldest_key, oldest = next(iter(_renders.items()))
        if len(_renders) <= RENDERS_KEPT and oldest.expires > now:
            break
        del _renders[oldest_key]


def _discard(predicate: object) -> None:
    with _lock:
        for key in [k for k, entry in _renders.items() if predicate(k, entry)]:  # type: ignore[operator]
            del _renders[key]


def forget_message(*, message_id: int) -> None:
    _discard(lambda key, entry: key[1] == message_id)


def forget_epoch(*, room_id: int, number: int) -> None:
    _discard(lambda key, entry: entry.room_id == room_id and entry.epoch == number)


def forget_all() -> None:
    with _lock:
        _renders.clear()


def cached_count() -> int:
    with _lock:
        return len(_renders)


events.on_message_changed(forget_message)
events.on_epoch_shredded(forget_epoch)
events.on_everything_stale(forget_all)
