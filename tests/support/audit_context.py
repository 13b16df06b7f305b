"""Every audit event written during the test run says where it came from.

Each append is watched (``append_locked``, where ``audit_record`` and the checkpoint writer
end): the event must name a known channel, and an event from an HTTP request (portal, API,
admin) its client's IP and request id, one from a socket frame or a task its request id.
A test that wrote an event without them fails when it ends. No database access of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from safechat.request_context import (
    CHANNEL_ADMIN,
    CHANNEL_API,
    CHANNEL_PORTAL,
    CHANNEL_SCIM,
    CHANNEL_TASK,
    CHANNEL_WEBSOCKET,
    CHANNELS,
)

_problems: list[str] = []
_HTTP = (CHANNEL_PORTAL, CHANNEL_API, CHANNEL_ADMIN, CHANNEL_SCIM)


def context_problem(event: Any) -> str | None:
    """Why ``event`` does not say where it came from, or None."""
    where = f"#{event.seq} {event.action} (channel {event.channel!r})"
    if event.channel not in CHANNELS:
        return f"{where}: no channel"
    if event.channel in _HTTP and not (event.source_ip and event.request_id):
        return f"{where}: no IP or request id"
    if event.channel in (CHANNEL_WEBSOCKET, CHANNEL_TASK) and not event.request_id:
        return f"{where}: no request id"
    return None


@pytest.fixture(autouse=True, scope="session")
def _audit_appends_watched() -> Iterator[None]:
    from audit import store
    from audit.services import checkpoints, record

    original = store.append_locked

    def watched(**kwargs: Any) -> Any:
        event = original(**kwargs)
        problem = context_problem(event)
        if problem is not None:
            _problems.append(problem)
        return event

    with (
        mock.patch.object(record, "append_locked", watched),
        mock.patch.object(checkpoints, "append_locked", watched),
    ):
        yield


@pytest.fixture(autouse=True)
def _audit_events_say_where_they_came_from(_audit_appends_watched: None) -> Iterator[None]:
    _problems.clear()
    yield
    found, _problems[:] = list(_problems), []
    if found:
        pytest.fail("audit events without their context:\n" + "\n".join(found), pytrace=False)
