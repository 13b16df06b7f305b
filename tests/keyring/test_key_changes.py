"""Key changes reach every process after commit, and rendered plaintext does not outlive
its message (issue 12, case 7)."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.db import transaction
from pytest_django import Settings

from accounts.services.tokens import api_token_create
from rooms import render_cache
from rooms.services import message_delete, message_edit, message_post
from rooms.services.epochs import epoch_shred_locked, room_epoch_shred
from safechat.keyring import events
from safechat.keyring.models import RoomEpoch
from safechat.keyring.services import (
    _epoch_key_opened_for,
    clear_key_caches,
    room_epoch_key_for,
)
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.rooms.test_scale_out import stop
from tests.support.fixtures import project_env, shared_database_url, start_server
from tests.support.servers import free_port

needs_redis = pytest.mark.skipif(
    not settings.REDIS_URL, reason="the embedded default serves from one process"
)


def cached(room_id: int, number: int, user_id: int) -> bool:
    return _epoch_key_opened_for(room_id=room_id, number=number, user_id=user_id) is not None


def eventually(predicate: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.02)
    return False


@pytest.fixture
def subscribed() -> None:
    assert events.wait_until_subscribed(), "no key change subscription"


async def render(message_id: int, revision: int, room_id: int, epoch: int, text: str) -> str:
    return await render_cache.rendered_once(
        message_id=message_id, revision=revision, room_id=room_id, epoch=epoch, text=text
    )


@pytest.mark.django_db(transaction=True)
def test_a_shred_evicts_the_key_and_its_renders_here(subscribed: None) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="**secret**")
    room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk)

    render_cache.forget_all()
    asyncio.run(render(message.pk, 0, room.pk, 1, "**secret**"))
    assert cached(room.pk, 1, owner.pk)
    assert render_cache.cached_count() == 1

    room_epoch_shred(actor=owner, epoch=RoomEpoch.objects.get(room=room, number=1))

    assert not cached(room.pk, 1, owner.pk)
    assert render_cache.cached_count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_edit_and_a_delete_evict_the_rendered_html() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message = message_post(sender=owner, room=room, text="first words")

    render_cache.forget_all()
    asyncio.run(render(message.pk, 0, room.pk, message.epoch, "first words"))
    assert render_cache.cached_count() == 1

    message = message_edit(actor=owner, message=message, text="second words")
    assert render_cache.cached_count() == 0

    asyncio.run(render(message.pk, 1, room.pk, message.epoch, "second words"))
    message_delete(actor=owner, message=message)
    assert render_cache.cached_count() == 0


def test_renders_expire_and_are_kept_per_revision(settings: Settings) -> None:
    settings.SAFECHAT_KEY_CACHE_SECONDS = 0.2

    async def scenario() -> tuple[str, str, int, int]:
        old = await render(7, 0, 1, 1, "old *text*")
        new = await render(7, 1, 1, 1, "new *text*")
        fresh = render_cache.cached_count()
        await asyncio.sleep(0.3)
        await render(8, 0, 1, 1, "another")  # trims what expired
        return old, new, fresh, render_cache.cached_count()

    render_cache.forget_all()
    old, new, fresh, later = asyncio.run(scenario())
    assert "old" in old
    assert "new" in new
    assert (fresh, later) == (2, 1)


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_shred_is_published_to_other_processes_only_after_commit(subscribed: None) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    listener = events._client().pubsub()
    listener.subscribe(events.channel_name())
    assert eventually(lambda: (m := listener.get_message(timeout=0.1)) and m["type"] == "subscribe")

    def published() -> list[dict[str, object]]:
        found = []
        while (message := listener.get_message(timeout=0.3)) is not None:
            if message["type"] == "message":
                found.append(json.loads(message["data"]))
        return found

    with transaction.atomic():
        epoch_shred_locked(actor=owner, epoch=RoomEpoch.objects.get(room=room, number=1))
        inside = published()
    after = published()
    listener.close()

    assert inside == []
    assert [(m["kind"], m["fields"]) for m in after] == [
        ("epoch-shredded", {"room_id": room.pk, "number": 1})
    ]


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_shred_in_another_process_evicts_this_process_cache(subscribed: None) -> None:
    owner = make_user()
    room = make_room(owner=owner)
    room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk)
    assert cached(room.pk, 1, owner.pk)

    # another process shredded epoch 1 and published it
    other = {"kind": "epoch-shredded", "fields": {"room_id": room.pk, "number": 1}}
    events._client().publish(events.channel_name(), json.dumps({**other, "origin": "elsewhere"}))

    assert eventually(lambda: not cached(room.pk, 1, owner.pk))


@needs_redis
@pytest.mark.django_db
def test_without_a_live_subscription_nothing_is_served_from_memory(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = make_user()
    room = make_room(owner=owner)

    def unreachable() -> object:
        raise ConnectionError("Redis is down")

    events.stop_subscriber()
    monkeypatch.setattr(events, "_client", unreachable)
    clear_key_caches()
    room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk)
    assert not events.caching_allowed()
    assert not cached(room.pk, 1, owner.pk)

    events.stop_subscriber()
    monkeypatch.undo()
    assert events.wait_until_subscribed()
    room_epoch_key_for(room_id=room.pk, number=1, user_id=owner.pk)
    assert cached(room.pk, 1, owner.pk)


@needs_redis
@pytest.mark.django_db(transaction=True)
def test_a_shred_here_stops_another_running_server_from_serving_the_epoch(
    tmp_path: Path, master_key_file: Path
) -> None:
    # given a web server (another process) that opened and cached a room's epoch key
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="shred me")
    _, secret = api_token_create(actor=owner, name="reader", scope="read")
    env = project_env(
        tmp_path,
        DATABASE_URL=shared_database_url(),
        REDIS_URL=str(settings.REDIS_URL),
        SECRET_KEY=settings.SECRET_KEY,
        SAFECHAT_MASTER_KEY_FILE=str(master_key_file),
        SAFECHAT_AUDIT_SIGNING_KEY_FILE=str(settings.SAFECHAT_AUDIT_SIGNING_KEY_FILE),
        ALLOWED_HOSTS="127.0.0.1",
        LOG_LEVEL="WARNING",
        SAFECHAT_KEY_CACHE_SECONDS="600",
    )
    env.pop("SAFECHAT_MASTER_KEYS", None)
    port = free_port()
    server = start_server(env, port)

    def texts() -> list[object]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/rooms/{room.pk}/messages/",
            headers={"Authorization": f"Bearer {secret}"},
        )
        with urllib.request.urlopen(request, timeout=30) as answer:
            return [m["text"] for m in json.loads(answer.read())["results"]]

    try:
        assert eventually(lambda: texts() == ["shred me"], seconds=10)

        # when this process shreds the epoch
        room_epoch_shred(actor=owner, epoch=RoomEpoch.objects.get(room=room, number=1))

        # then the server stops serving it at once, not after its ten-minute cache
        assert eventually(lambda: texts() == [None], seconds=5)
    finally:
        stop(server)
