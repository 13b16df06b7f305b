"""The presence registry: one state per socket, the liveliest one per user, expiry."""

from __future__ import annotations

import time

import pytest

from rooms import presence
from rooms.presence import presence_clear, presence_of, presence_set


def test_a_user_is_as_present_as_their_liveliest_socket() -> None:
    assert presence_set(user_id=1, socket_id="tab-a", state="away") == "away"
    assert presence_set(user_id=1, socket_id="tab-b", state="online") == "online"
    assert presence_of(user_ids=[1, 2]) == {1: "online"}

    assert presence_clear(user_id=1, socket_id="tab-b") == "away"
    assert presence_clear(user_id=1, socket_id="tab-a") == "offline"
    assert presence_of(user_ids=[1]) == {}


def test_a_socket_that_stopped_its_heartbeat_counts_as_gone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    presence_set(user_id=7, socket_id="crashed-process", state="online")
    later = time.time() + presence.SOCKET_TTL_SECONDS + 1

    monkeypatch.setattr(presence, "_now", lambda: later)

    assert presence_of(user_ids=[7]) == {}
    assert presence_set(user_id=7, socket_id="new-tab", state="away") == "away"


def test_only_online_and_away_can_be_recorded() -> None:
    with pytest.raises(ValueError, match="online or away"):
        presence_set(user_id=3, socket_id="tab", state="offline")

    assert presence_of(user_ids=[3]) == {}
