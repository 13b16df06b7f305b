"""Every audit event says where it came from: channel, IP, user agent, request id, token."""

from __future__ import annotations

import io
import logging
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from pytest_django import Settings

from accounts.services import api_token_create
from audit import chain
from audit.actions import AuditAction
from audit.models import AuditEvent
from audit.tasks import audit_chain_verify_task
from safechat.asgi import application
from safechat.logredact import axes_client_str, redact
from safechat.request_context import (
    CHANNEL_ADMIN,
    CHANNEL_API,
    CHANNEL_PORTAL,
    http_channel,
)
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.rooms.factories import make_room
from tests.support.fixtures import session_cookie_for

AGENT = "Mozilla/5.0 (SafeChat test)"


def last(action: str) -> AuditEvent:
    event: AuditEvent = AuditEvent.objects.filter(action=action).order_by("-seq")[0]
    return event


@pytest.mark.django_db
def test_a_portal_action_records_the_portal_channel_ip_agent_and_request_id() -> None:
    # given an owner signed in to the portal
    owner = make_user()
    room = make_room(owner=owner, name="Old name")
    client = Client(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT=AGENT)
    sign_in_client(client, owner, verified=True)

    # when the owner renames the room through the portal
    response = client.post(f"/rooms/{room.pk}/settings/", {"name": "New name"})

    # then the event says portal, from where, with the request id the response carried
    event = last(AuditAction.ROOM_UPDATED)
    assert (event.channel, event.source_ip, event.user_agent) == ("portal", "198.51.100.7", AGENT)
    assert event.request_id == response["X-Request-ID"]
    assert event.token_id is None


@pytest.mark.django_db
def test_a_client_chosen_request_id_is_replaced_unless_a_trusted_proxy_sets_it(
    settings: Settings,
) -> None:
    # given an owner, and a request id chosen by the client
    owner = make_user()
    room = make_room(owner=owner)
    client = Client()
    sign_in_client(client, owner, verified=True)
    chosen = "chosen-by-client-0001"

    # when the client sends it straight to the application
    direct = client.post(f"/rooms/{room.pk}/settings/", {"name": "A"}, HTTP_X_REQUEST_ID=chosen)
    direct_event = last(AuditAction.ROOM_UPDATED)
    # and when the trusted proxy in front sets it
    settings.SAFECHAT_TRUST_REQUEST_ID_HEADER = True
    proxied = client.post(f"/rooms/{room.pk}/settings/", {"name": "B"}, HTTP_X_REQUEST_ID=chosen)

    # then only the proxy's is stored; the client's is replaced by a new one
    assert direct_event.request_id != chosen
    assert direct_event.request_id == direct["X-Request-ID"]
    assert len(direct_event.request_id) == 32
    assert last(AuditAction.ROOM_UPDATED).request_id == chosen == proxied["X-Request-ID"]


@pytest.mark.django_db
def test_an_api_action_records_the_api_channel_and_the_token_it_used() -> None:
    # given a room admin's write token
    admin = grant_role(make_user(), "room_admin")
    token, secret = api_token_create(actor=admin, name="ci", scope="write")
    client = Client(REMOTE_ADDR="203.0.113.9", HTTP_USER_AGENT="curl/8")

    # when the token creates a room
    response = client.post(
        "/api/v1/rooms/create/",
        {"name": "Credit desk"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )

    # then the event names the API, the token and the request
    assert response.status_code == 201
    event = last(AuditAction.ROOM_CREATED)
    assert (event.channel, event.token_id) == ("api", token.pk)
    assert (event.source_ip, event.user_agent) == ("203.0.113.9", "curl/8")
    assert event.request_id == response["X-Request-ID"]


def test_the_channel_of_an_http_request_follows_its_path() -> None:
    assert http_channel("/api/v1/rooms/") == CHANNEL_API
    assert http_channel("/admin/audit/auditevent/") == CHANNEL_ADMIN
    assert http_channel("/rooms/3/") == CHANNEL_PORTAL
    assert http_channel("/apiary/") == CHANNEL_PORTAL


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_socket_frames_record_the_websocket_channel_handshake_address_and_a_frame_id() -> (
    None
):
    # given a member's socket, opened from an address with a user agent
    owner = await database_sync_to_async(make_user)()
    room = await database_sync_to_async(make_room)(owner=owner)
    cookie = await database_sync_to_async(session_cookie_for)(owner, verified=True)
    socket = WebsocketCommunicator(
        application,
        "/ws/",
        headers=[
            (b"origin", b"http://localhost:8000"),
            (b"user-agent", AGENT.encode()),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    socket.scope["client"] = ("192.0.2.44", 51000)
    assert (await socket.connect())[0]
    try:
        # when two messages are posted over it
        for n in (1, 2):
            await socket.send_json_to(
                {"type": "message.post", "room_id": room.pk, "text": f"m{n}", "client_id": f"{n}"}
            )
            while (await socket.receive_json_from(timeout=5))["type"] != "ack":
                pass
    finally:
        await socket.disconnect()

    # then each event says websocket, from the handshake's address, under its own frame id
    events = await database_sync_to_async(
        lambda: list(AuditEvent.objects.filter(action=AuditAction.MESSAGE_POSTED).order_by("seq"))
    )()
    assert [(e.channel, e.source_ip, e.user_agent) for e in events] == [
        ("websocket", "192.0.2.44", AGENT)
    ] * 2
    assert all(e.request_id for e in events)
    assert events[0].request_id != events[1].request_id


@pytest.mark.django_db
def test_a_task_records_the_task_channel_under_a_request_id() -> None:
    # when the verification task runs
    audit_chain_verify_task()

    # then its event says task, with an id of its own
    event = last(AuditAction.AUDIT_VERIFIED)
    assert event.channel == "task"
    assert event.request_id
    assert event.source_ip is None


@pytest.mark.django_db
def test_a_command_records_the_command_channel_under_a_request_id() -> None:
    # when an operator verifies the log from the command line and records it
    call_command("verify_audit", "--record", stdout=io.StringIO())

    # then the event says command, with an id of its own
    event = last(AuditAction.AUDIT_VERIFIED)
    assert event.channel == "command"
    assert event.request_id


def test_version_1_events_verify_as_written_and_cannot_gain_a_channel() -> None:
    # given an event in the version 1 form, as written before channels existed
    v1: dict[str, Any] = {
        "v": 1, "seq": 1, "occurred_at": "2025-01-31T09:15:00.000000Z", "actor_type": "user",
        "actor_id": 7, "actor_username": "alice", "action": "room.created",
        "target_type": "rooms.room", "target_id": "42", "source_ip": "192.0.2.1",
        "user_agent": "Mozilla/5.0", "request_id": "abc123", "extra": {}, "prev_hash": "0" * 64,
    }  # fmt: skip
    v1_hash = chain.event_hash(v1)

    # then the stored empty channel and token change nothing, a set one breaks the hash
    assert chain.event_hash({**v1, "channel": "", "token_id": None}) == v1_hash
    assert chain.event_hash({**v1, "channel": "api"}) != v1_hash
    assert chain.event_hash({**v1, "token_id": 3}) != v1_hash
    # and version 2 hashes the channel and the token as canonical JSON
    v2 = {**v1, "v": 2, "channel": "api", "token_id": 3}
    assert chain.canonical_event_bytes(v2) == chain.canonical_json(v2).encode()
    assert chain.event_hash({**v2, "token_id": 4}) != chain.event_hash(v2)


SECRETS = ("BOOTSTRAPsecret0123456789", "INVITEsecret0123456789", "RESETsecret0123456789")


@pytest.mark.django_db
def test_no_log_line_carries_a_one_time_link_secret(log_output: io.StringIO) -> None:
    # given one-time links as a browser opens them, and a failed sign-in on one of them
    client = Client()
    client.get(f"/accounts/bootstrap/{SECRETS[0]}/")
    client.get(f"/accounts/invitation/{SECRETS[1]}/")
    client.post(f"/accounts/invitation/{SECRETS[1]}/", {"password1": "x", "password2": "y"})
    client.get(f"/accounts/password-reset/MQ/{SECRETS[2]}/")
    client.get(f"/accounts/nothing-here/{SECRETS[1]}/")  # a 404 is logged with its path
    # and the server's access log and axes writing those paths
    access = logging.getLogger("uvicorn.access")
    for path in (
        f"/accounts/bootstrap/{SECRETS[0]}/",
        f"/accounts/password-reset/MQ/{SECRETS[2]}/",
    ):
        access.info('%s - "%s %s HTTP/%s" %d', "192.0.2.1", "GET", path, "1.1", 200)
    logging.getLogger("axes.handlers").warning(
        "AXES: failure %s",
        axes_client_str("u", "192.0.2.1", "ua", f"/accounts/invitation/{SECRETS[1]}/", None),
    )

    # then something was logged, and no secret appears in it
    text = log_output.getvalue()
    assert "[redacted]" in text
    for secret in SECRETS:
        assert secret not in text


def test_redaction_keeps_everything_but_the_secret_segments() -> None:
    assert redact("GET /accounts/invitation/abc/?next=/x HTTP/1.1") == (
        "GET /accounts/invitation/[redacted]/?next=/x HTTP/1.1"
    )
    assert redact("/accounts/password-reset/MQ/set-password/") == (
        "/accounts/password-reset/[redacted]/[redacted]/"
    )
    assert redact("/accounts/password-reset/") == "/accounts/password-reset/"
    assert redact("/rooms/3/") == "/rooms/3/"


def test_the_proxy_template_keeps_one_time_links_out_of_its_error_log() -> None:
    # given the nginx template shipped for deployments
    import re
    from pathlib import Path

    conf = (Path(django_settings.BASE_DIR) / "deploy" / "nginx" / "safechat.conf").read_text()
    server = conf[conf.index("listen 443") :]

    # then the error log (no format: the raw request line) is a file of its own, and the
    # one-time links' location logs nothing below crit
    assert "error_log /var/log/nginx/safechat.error.log" in server
    links = re.search(r"location ~ \^/accounts/\((\S+)\)/ \{(.*?)\n    \}", server, re.S)
    assert links is not None
    assert set(links.group(1).split("|")) == {"bootstrap", "invitation", "password-reset"}
    assert re.search(r"error_log \S+ crit;", links.group(2))
