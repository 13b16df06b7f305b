"""Who is acting, from where and through which channel, for every layer that logs or audits.

The edges set it: ``safechat.middleware.RequestIdMiddleware`` for HTTP (portal, API,
admin), the API token authentication adds the token id, the socket consumer sets it for
each frame, ``safechat.celery`` for each task and the management commands for their run.
Read by log filters and by ``audit_record``, which fills an event's channel, IP, user
agent, request id and token id from it. Imports nothing of the project, so any layer
may read it. A ``contextvars`` value follows ``asyncio`` tasks and ``sync_to_async``
threads (the socket's writer threads too), never another request's.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import TypeVar

CHANNEL_PORTAL = "portal"
CHANNEL_API = "api"
CHANNEL_ADMIN = "admin"
CHANNEL_WEBSOCKET = "websocket"
CHANNEL_TASK = "task"
CHANNEL_COMMAND = "command"
CHANNEL_SCIM = "scim"  # an identity provider's provisioning (/scim/v2/)
CHANNELS = (
    CHANNEL_PORTAL,
    CHANNEL_API,
    CHANNEL_ADMIN,
    CHANNEL_WEBSOCKET,
    CHANNEL_TASK,
    CHANNEL_COMMAND,
    CHANNEL_SCIM,
)

current_request_id: ContextVar[str] = ContextVar("current_request_id", default="-")
"""Request correlation: every request, log line and audit event shares one id."""


@dataclass
class ActingContext:
    """Where the action being served comes from. Mutable on purpose: the API token is
    known only once DRF authenticates, deep inside the request the middleware opened."""

    channel: str
    ip: str | None = None
    user_agent: str = ""
    request_id: str = ""
    token_id: int | None = None
    # Refusals recorded while serving it (``audit_record`` counts them): a 403 with
    # none is recorded by the edge as ``access.refused`` (safechat.middleware).
    refusals_recorded: int = 0


current_acting: ContextVar[ActingContext | None] = ContextVar("current_acting", default=None)
"""The acting context of the request, frame, task or command being served (None: none)."""


USER_AGENT_MAX_LENGTH = 256
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def new_request_id() -> str:
    return uuid.uuid4().hex


def client_ip(address: str | None) -> str | None:
    """``address`` if it is an IP address, else None. For HTTP it is ``REMOTE_ADDR``, which
    the server sets from the trusted proxy's ``X-Forwarded-For`` (``--forwarded-allow-ips``)."""
    try:
        return str(ipaddress.ip_address(address or ""))
    except ValueError:
        return None


def http_channel(path: str) -> str:
    """The channel an HTTP request acts through, by its path: the API, the admin, SCIM
    provisioning or the portal."""
    if path.startswith("/api/"):
        return CHANNEL_API
    if path.startswith("/admin/"):
        return CHANNEL_ADMIN
    if path.startswith("/scim/"):
        return CHANNEL_SCIM
    return CHANNEL_PORTAL


def clean_user_agent(raw: str) -> str:
    """A user agent as stored: no control characters, at most 256 characters."""
    return _CONTROL_CHARACTERS.sub("", raw)[:USER_AGENT_MAX_LENGTH]


@contextmanager
def acting(context: ActingContext) -> Iterator[ActingContext]:
    """Serve the block under ``context`` (and its request id), restoring the previous
    context afterwards, also when the block raises."""
    token = current_acting.set(context)
    id_token = current_request_id.set(context.request_id or "-")
    try:
        yield context
    finally:
        current_request_id.reset(id_token)
        current_acting.reset(token)


def acting_token_set(token_id: int) -> None:
    """Record that the current request acts with API token ``token_id``."""
    context = current_acting.get()
    if context is not None:
        context.token_id = token_id


T = TypeVar("T")


def acting_kept(items: Iterator[T]) -> Iterator[T]:
    """``items``, each one produced under the acting context current now (the call).

    A streamed response body is read after the view returned, when the edge's context
    (``RequestIdMiddleware``'s, say) has ended: whatever reading it records (an
    integrity failure found mid-download) must still say it came from that request,
    with its channel, client address, request id and token. Each step re-enters the
    context captured here and leaves it before handing the item on.
    """
    context = current_acting.get()
    if context is None:
        return items
    if not context.request_id:
        request_id = current_request_id.get()
        context = replace(context, request_id="" if request_id == "-" else request_id)
    return _stepped_in(items, context)


def _stepped_in(items: Iterator[T], context: ActingContext) -> Iterator[T]:
    try:
        while True:
            with acting(context):
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:  # a body closed early: its clean-up runs in the context too
            with acting(context):
                close()
