"""The API refuses what it does not understand rather than guessing: a header sent twice,
a body field or a query parameter it does not know, a body in a content coding; and every
answer, refusals of the ASGI wrapper too, carries the security headers and the state of
the rate limits it counted against."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError
from django.test import Client
from pytest_django import Settings

from accounts.models import User
from accounts.services import api_token_create
from rooms.models import Message, Room
from rooms.services.messages import client_key_clean
from safechat.asgi import application
from tests.rooms.factories import make_room, make_room_admin
from tests.safechat.test_api_errors import assert_problem
from tests.safechat.test_body_limits import Sender, http_scope, run
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def member() -> User:
    return make_room_admin(username="member")


@pytest.fixture
def client_of(member: User) -> Client:
    return verified_client(member)


@pytest.fixture
def room(member: User) -> Room:
    return make_room(owner=member, name="Rates desk")


def post_json(client: Client, path: str, body: Any, **headers: str) -> Any:
    return client.post(path, json.dumps(body), content_type="application/json", headers=headers)


# --- Idempotency-Key: one key, once -------------------------------------------------


@pytest.mark.parametrize("value", ["key-1,key-2", "key-1, key-2", ","])
def test_an_idempotency_key_with_a_comma_is_refused_naming_the_header(
    client_of: Client, room: Room, value: str
) -> None:
    # when a post carries two keys joined (as HTTP joins a header sent twice)
    response = post_json(
        client_of,
        f"/api/v1/rooms/{room.pk}/messages/",
        {"text": "hi"},
        **{"Idempotency-Key": value},
    )

    # then it is a 400 naming the header, and nothing is stored
    body = assert_problem(response, 400, "invalid")
    assert body["errors"] == [
        {
            "parameter": "Idempotency-Key",
            "code": "repeated",
            "detail": "Send one key, once; a key holds no comma.",
        }
    ]
    assert not Message.objects.filter(room=room).exists()


@pytest.mark.parametrize("value", ["", "k" * 65, "caf\u00e9", "two words"])
def test_an_empty_or_malformed_idempotency_key_is_refused_naming_the_header(
    client_of: Client, room: Room, value: str
) -> None:
    # when a post carries an empty key (each retry would otherwise store another message)
    # or one that is not 1-64 visible ASCII characters
    path = f"/api/v1/rooms/{room.pk}/messages/"
    first = post_json(client_of, path, {"text": "hi"}, **{"Idempotency-Key": value})
    again = post_json(client_of, path, {"text": "hi"}, **{"Idempotency-Key": value})

    # then each is a 400 naming the header with the code invalid, and nothing is stored
    for response in (first, again):
        body = assert_problem(response, 400, "invalid")
        assert body["errors"] == [
            {
                "parameter": "Idempotency-Key",
                "code": "invalid",
                "detail": "an idempotency key is 1-64 visible ASCII characters, "
                "none of them a comma",
            }
        ]
    assert not Message.objects.filter(room=room).exists()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/api/v1/rooms/create/", {"name": "Rates"}),
        ("post", "/api/v1/direct/", {"participants": [9999]}),
        ("patch", "/api/v1/rooms/ROOM/", {"topic": "rates"}),
        ("patch", "/api/v1/rooms/ROOM/messages/MESSAGE/", {"text": "edited"}),
        ("delete", "/api/v1/rooms/ROOM/messages/MESSAGE/", None),
        ("post", "/api/v1/accounts/tokens/", {"name": "ci", "scope": "read"}),
    ],
    ids=["room-create", "direct", "room-update", "message-edit", "message-delete", "token"],
)
def test_an_idempotency_key_where_none_is_honoured_is_refused_not_ignored(
    client_of: Client, member: User, room: Room, method: str, path: str, body: Any
) -> None:
    # given a message (the one write that honours a key is posting one)
    message = Message.objects.get(
        pk=post_json(client_of, f"/api/v1/rooms/{room.pk}/messages/", {"text": "hi"}).json()["id"]
    )
    rooms, tokens = list(Room.objects.values_list("pk", "topic")), member.api_tokens.count()
    revision = message.revision
    path = path.replace("ROOM", str(room.pk)).replace("MESSAGE", str(message.pk))

    # when a write that would not make a retry safe is sent with a key (a retried room
    # creation would otherwise create a second room, as if the key had counted)
    key = {"Idempotency-Key": "k-1"}
    send = getattr(client_of, method)
    response = (
        send(path, json.dumps(body), content_type="application/json", headers=key)
        if body is not None
        else send(path, headers=key)
    )

    # then it is a 400 naming the header, code unknown, and nothing was written
    problem = assert_problem(response, 400, "invalid")
    assert [(e["parameter"], e["code"]) for e in problem["errors"]] == [
        ("Idempotency-Key", "unknown")
    ]
    assert list(Room.objects.values_list("pk", "topic")) == rooms
    assert member.api_tokens.count() == tokens
    message.refresh_from_db()
    assert (message.revision, message.deleted_at) == (revision, None)


def test_an_idempotency_key_on_a_method_the_route_does_not_take_is_a_405_first(
    client_of: Client, room: Room
) -> None:
    # given a route that answers GET and POST only
    path = f"/api/v1/rooms/{room.pk}/messages/"

    # when a method it does not take comes with a key
    response = client_of.generic(
        "TRACE", path, json.dumps({"text": "hi"}), content_type="application/json",
        headers={"Idempotency-Key": "k-1"},
    )  # fmt: skip

    # then the method is what is wrong, and nothing was posted
    assert_problem(response, 405, "method_not_allowed")
    assert not Message.objects.filter(room=room).exists()


def test_an_idempotency_key_on_a_read_changes_nothing_and_is_answered(
    client_of: Client, room: Room
) -> None:
    # (a read writes nothing: a key cannot make it any safer, nor a retry of it harmful)
    response = client_of.get(f"/api/v1/rooms/{room.pk}/", headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 200


def test_an_idempotency_key_used_in_another_room_is_refused_naming_the_header(
    client_of: Client, member: User, room: Room
) -> None:
    # given a key used for a post in another room
    other = make_room(owner=member, name="FX desk")
    used = post_json(
        client_of,
        f"/api/v1/rooms/{other.pk}/messages/",
        {"text": "hi"},
        **{"Idempotency-Key": "k-9"},
    )
    assert used.status_code == 201

    # when it is sent with a post here
    response = post_json(
        client_of,
        f"/api/v1/rooms/{room.pk}/messages/",
        {"text": "hi"},
        **{"Idempotency-Key": "k-9"},
    )

    # then it is a 400 naming the header with its own code, and nothing is stored here
    body = assert_problem(response, 400, "invalid")
    assert [(e["parameter"], e["code"]) for e in body["errors"]] == [
        ("Idempotency-Key", "other_room")
    ]
    assert not Message.objects.filter(room=room).exists()


def test_an_idempotency_key_reused_for_another_text_is_a_422_naming_the_header(
    client_of: Client, room: Room
) -> None:
    path = f"/api/v1/rooms/{room.pk}/messages/"
    first = post_json(client_of, path, {"text": "buy"}, **{"Idempotency-Key": "k-7"})

    response = post_json(client_of, path, {"text": "sell"}, **{"Idempotency-Key": "k-7"})

    assert first.status_code == 201
    body = assert_problem(response, 422, "idempotency_key_reused")
    assert [(e["parameter"], e["code"]) for e in body["errors"]] == [("Idempotency-Key", "reused")]
    assert list(Message.objects.filter(room=room).values_list("pk", flat=True)) == [
        first.json()["id"]
    ]


@pytest.mark.django_db(transaction=True)
def test_the_idempotency_key_sent_twice_through_the_real_stack_is_refused() -> None:
    # given a write token, and a room of its user
    user = make_room_admin(username="integrator")
    room = make_room(owner=user, name="Desk")
    _, secret = api_token_create(actor=user, name="ci", scope="write")
    body = json.dumps({"text": "hi"}).encode()

    # when a post carries the header twice, through the ASGI stack
    answer = run(
        application,
        http_scope(
            f"/api/v1/rooms/{room.pk}/messages/",
            [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"authorization", f"Bearer {secret}".encode()),
                (b"idempotency-key", b"key-1"),
                (b"idempotency-key", b"key-2"),
            ],
        ),
        Sender([body]),
    )

    # then it is refused, and nothing is stored
    assert answer.status == 400, answer.body
    problem = json.loads(answer.body)
    assert problem["errors"][0]["parameter"] == "Idempotency-Key"
    assert problem["errors"][0]["code"] == "repeated"
    stored = asyncio.run(database_sync_to_async(Message.objects.filter(room=room).count)())
    assert stored == 0


def test_one_idempotency_key_still_makes_a_post_idempotent(client_of: Client, room: Room) -> None:
    path = f"/api/v1/rooms/{room.pk}/messages/"

    first = post_json(client_of, path, {"text": "hi"}, **{"Idempotency-Key": "k-1"})
    again = post_json(client_of, path, {"text": "hi"}, **{"Idempotency-Key": "k-1"})

    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert Message.objects.filter(room=room).count() == 1


def test_no_edge_takes_a_key_with_a_comma_or_an_empty_key() -> None:
    # the service's rule, which the socket's client_id meets too
    with pytest.raises(ValidationError):
        client_key_clean("key-1,key-2")
    with pytest.raises(ValidationError):
        client_key_clean("")
    assert client_key_clean(None) is None
    assert client_key_clean("3f0b8e1c-5d7a-4c1e-9b2f-0a6d8c4e2f10") is not None


# --- query parameters: a list takes only those it documents --------------------------

LISTS = [
    "/api/v1/rooms/",
    "/api/v1/rooms/joinable/",
    "/api/v1/people/",
    "/api/v1/changes/",
    "/api/v1/mentions/",
    "/api/v1/rooms/{room}/members/",
    "/api/v1/rooms/{room}/messages/",
    "/api/v1/rooms/{room}/files/",
    "/api/v1/accounts/tokens/",
]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_refuses_a_parameter_it_does_not_take(
    client_of: Client, room: Room, path: str
) -> None:
    # when a list is asked with a typo for a parameter, and one it never took
    response = client_of.get(path.format(room=room.pk), {"limt": "5", "zz": "1"})

    # then each is named, with the code unknown, and the list is not answered
    body = assert_problem(response, 400, "invalid")
    assert [(e["parameter"], e["code"]) for e in body["errors"]] == [
        ("limt", "unknown"),
        ("zz", "unknown"),
    ]
    assert "results" not in body


@pytest.mark.parametrize("path", LISTS)
def test_every_list_still_answers_its_own_parameters(
    client_of: Client, room: Room, path: str
) -> None:
    response = client_of.get(path.format(room=room.pk), {"limit": "5"})

    assert response.status_code == 200, response.content
    assert "results" in response.json()


def test_the_change_feed_refuses_before_rather_than_ignoring_it(
    client_of: Client, room: Room, member: User
) -> None:
    # given a room with a message (an entry in the feed)
    from rooms.services import message_post

    message_post(sender=member, room=room, text="hello")

    # when the feed is asked for entries before a cursor, which it does not take
    response = client_of.get("/api/v1/changes/", {"before": "999"})

    # then it says so, naming the parameter and what it takes
    body = assert_problem(response, 400, "invalid")
    (error,) = body["errors"]
    assert (error["parameter"], error["code"]) == ("before", "unknown")
    assert "after, limit" in error["detail"]


def test_a_search_list_takes_q(client_of: Client, room: Room) -> None:
    response = client_of.get("/api/v1/rooms/joinable/", {"q": "desk", "limit": "5"})

    assert response.status_code == 200


# --- bodies: only the fields a request documents ------------------------------------


def _writes(room: Room, message_id: int, peer: User) -> list[tuple[str, str, dict[str, Any]]]:
    """Every write that takes a body, with a body it would accept."""
    base = f"/api/v1/rooms/{room.pk}"
    return [
        ("post", "/api/v1/rooms/create/", {"name": "Desk 2"}),
        ("post", "/api/v1/direct/", {"participants": [peer.pk]}),
        ("patch", f"{base}/", {"topic": "rates"}),
        ("post", f"{base}/mute/", {"mute": "all"}),
        ("post", f"{base}/members/", {"user_id": peer.pk}),
        ("patch", f"{base}/members/{peer.pk}/", {"role": "moderator"}),
        ("post", f"{base}/messages/", {"text": "hi"}),
        ("patch", f"{base}/messages/{message_id}/", {"text": "edited"}),
        ("post", f"{base}/messages/{message_id}/reactions/", {"emoji": "👍"}),
        ("post", f"{base}/read-marker/", {"message_id": message_id}),
        ("post", "/api/v1/accounts/tokens/", {"name": "ci", "scope": "read"}),
        ("patch", "/api/v1/accounts/me/", {"first_name": "Ann"}),
    ]


def _state() -> tuple[int, ...]:
    from accounts.models import ApiToken
    from audit.models import AuditEvent
    from rooms.models import Membership, Reaction

    return (
        AuditEvent.objects.count(),
        Room.objects.count(),
        Membership.objects.count(),
        Message.objects.count(),
        Reaction.objects.count(),
        ApiToken.objects.count(),
    )


def test_every_write_refuses_a_body_member_it_does_not_take(
    client_of: Client, room: Room, member: User
) -> None:
    from rooms.services import membership_add, message_post
    from tests.accounts.factories import make_user

    # given a room with a message, and a peer in it
    peer = make_user(username="peer")
    membership_add(actor=member, room=room, user=peer)
    message = message_post(sender=member, room=room, text="hello")
    writes = _writes(room, message.pk, peer)
    before = _state()

    for method, path, body in writes:
        # when each write is sent its body with a misspelt member beside it
        response = getattr(client_of, method)(
            path, json.dumps({**body, "tpoic": "x"}), content_type="application/json"
        )

        # then it is refused, pointing at the member, naming the fields it takes
        problem = assert_problem(response, 400, "invalid")
        (error,) = problem["errors"]
        assert (error["pointer"], error["code"]) == ("#/tpoic", "unknown"), (method, path)
        for name in body:
            assert name in error["detail"], (path, error["detail"])

    # and nothing was written, nor recorded as done
    assert _state() == before


def test_an_unknown_member_is_named_beside_the_other_field_errors(client_of: Client) -> None:
    response = post_json(client_of, "/api/v1/rooms/create/", {"nmae": "Desk"})

    body = assert_problem(response, 400, "invalid")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("#/name", "required"),
        ("#/nmae", "unknown"),
    ]
    assert not Room.objects.filter(name="Desk").exists()


def test_a_write_that_takes_no_body_refuses_one_with_members(
    client_of: Client, room: Room, member: User
) -> None:
    from rooms.services import membership_add, message_post
    from tests.accounts.factories import make_user

    peer = make_user(username="peer")
    membership_add(actor=member, room=room, user=peer)
    message = message_post(sender=member, room=room, text="hello")
    token, _ = api_token_create(actor=member, name="old", scope="read")
    token_id = token.pk
    base = f"/api/v1/rooms/{room.pk}"
    bodiless = [
        ("post", f"{base}/archive/"),
        ("post", f"{base}/unarchive/"),
        ("post", f"{base}/join/"),
        ("delete", f"{base}/members/{peer.pk}/"),
        ("delete", f"{base}/messages/{message.pk}/"),
        ("delete", f"/api/v1/accounts/tokens/{token_id}/"),
    ]
    before = _state()

    for method, path in bodiless:
        response = getattr(client_of, method)(
            path, json.dumps({"force": True}), content_type="application/json"
        )

        problem = assert_problem(response, 400, "invalid")
        assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [("#/force", "unknown")]
        assert "takes no body" in problem["errors"][0]["detail"]

    assert _state() == before
    assert not Room.objects.get(pk=room.pk).is_archived


def test_a_write_that_takes_no_body_still_takes_none_or_an_empty_object(
    client_of: Client, room: Room
) -> None:
    archived = client_of.post(f"/api/v1/rooms/{room.pk}/archive/", content_type="application/json")
    restored = client_of.post(
        f"/api/v1/rooms/{room.pk}/unarchive/", "{}", content_type="application/json"
    )

    assert (archived.status_code, restored.status_code) == (200, 200)


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", "hello"),
        ("application/x-www-form-urlencoded", "force=1"),
        ("application/octet-stream", "\x00\x01"),
        ("application/json", "[1]"),
        ("application/json", '"hello"'),
    ],
)
def test_a_write_that_takes_no_body_refuses_a_body_of_any_other_kind(
    client_of: Client, room: Room, content_type: str, body: str
) -> None:
    # when a join-like write (here an archive) is sent a body that is not an empty object
    before = _state()
    response = client_of.post(f"/api/v1/rooms/{room.pk}/archive/", body, content_type=content_type)

    # then it is refused as a body it does not take, never ignored, and nothing changed
    problem = assert_problem(response, 400, "invalid")
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [("#", "no_body")]
    assert "takes no body" in problem["detail"]
    assert _state() == before
    assert not Room.objects.get(pk=room.pk).is_archived


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/octet-stream"]
)
def test_a_write_that_takes_no_body_takes_an_empty_body_of_any_type(
    client_of: Client, room: Room, content_type: str
) -> None:
    # an empty multipart body (the test client's default for client.post(url)) included
    archived = client_of.post(f"/api/v1/rooms/{room.pk}/archive/")
    restored = client_of.post(f"/api/v1/rooms/{room.pk}/unarchive/", "", content_type=content_type)

    assert (archived.status_code, restored.status_code) == (200, 200)
    assert not Room.objects.get(pk=room.pk).is_archived


def test_a_write_that_takes_no_body_refuses_a_multipart_body_with_a_field(
    client_of: Client, room: Room
) -> None:
    response = client_of.post(f"/api/v1/rooms/{room.pk}/archive/", {"force": "1"})

    problem = assert_problem(response, 400, "invalid")
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [("#", "no_body")]
    assert not Room.objects.get(pk=room.pk).is_archived


def test_every_request_body_in_the_schema_admits_no_other_member() -> None:
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)  # type: ignore[no-untyped-call]
    components = schema["components"]["schemas"]
    bodies = {
        f"{method.upper()} {path}": operation["requestBody"]["content"]["application/json"]
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    }
    assert len(bodies) >= 12

    open_bodies = [
        name
        for name, body in bodies.items()
        if components[body["schema"]["$ref"].rsplit("/", 1)[1]].get("additionalProperties")
        is not False
    ]
    assert open_bodies == []


# --- content codings: refused before parsing ----------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "br", "GZIP", "identity, gzip", "x-anything"])
def test_a_body_in_a_content_coding_is_a_415_before_anything_parses_it(
    client_of: Client, coding: str
) -> None:
    import gzip

    # when a room is created with a gzip-coded JSON body
    body = gzip.compress(json.dumps({"name": "Zipped desk"}).encode())
    response = client_of.post(
        "/api/v1/rooms/create/",
        body,
        content_type="application/json",
        headers={"Content-Encoding": coding},
    )

    # then 415, telling the coding from a media type (Accept-Encoding), nothing created
    assert_problem(response, 415, "unsupported_content_encoding")
    assert response["Accept-Encoding"] == "identity"
    assert not Room.objects.filter(name="Zipped desk").exists()


def test_a_content_coding_is_refused_for_a_token_before_the_view_reads_anything(
    member: User,
) -> None:
    # given a write token
    _, secret = api_token_create(actor=member, name="ci", scope="write")

    # when it sends a coded body, and a GET naming a coding
    posted = Client().post(
        "/api/v1/rooms/create/", b"\x1f\x8b\x08", content_type="application/json",
        headers={"Content-Encoding": "gzip", "Authorization": f"Bearer {secret}"},
    )  # fmt: skip
    listed = Client().get(
        "/api/v1/rooms/", headers={"Content-Encoding": "br", "Authorization": f"Bearer {secret}"}
    )

    # then both are the same 415, never a parse error
    assert_problem(posted, 415, "unsupported_content_encoding")
    assert_problem(listed, 415, "unsupported_content_encoding")
    assert not Room.objects.exists()


def test_identity_is_no_coding_and_is_served(client_of: Client) -> None:
    response = post_json(
        client_of,
        "/api/v1/rooms/create/",
        {"name": "Plain desk"},
        **{"Content-Encoding": "identity"},
    )

    assert response.status_code == 201
    assert Room.objects.filter(name="Plain desk").exists()


def test_a_415_for_a_media_type_names_no_accepted_coding(client_of: Client) -> None:
    # RFC 9110, 12.5.3: Accept-Encoding only where the coding was the fault
    response = client_of.post("/api/v1/rooms/create/", "name=x", content_type="text/plain")

    assert_problem(response, 415, "unsupported_media_type")
    assert "Accept-Encoding" not in response


# --- every answer carries the security headers ---------------------------------------

SECURITY_HEADERS = (
    "x-content-type-options",
    "content-security-policy",
    "x-frame-options",
    "referrer-policy",
    "cross-origin-opener-policy",
)


def _site_policy() -> str:
    from csp.utils import build_policy

    return build_policy()


def test_every_kind_of_django_answer_carries_the_security_headers(
    client_of: Client, room: Room, member: User
) -> None:
    from tests.accounts.factories import sign_in_client

    unverified = Client()
    sign_in_client(unverified, member, verified=False)
    answers = {
        "200": client_of.get("/api/v1/rooms/"),
        "401 of the middleware": Client().get("/api/v1/rooms/"),
        "403 second factor": unverified.get("/api/v1/rooms/"),
        "404 no route": client_of.get("/api/v1/nothing/"),
        "405": client_of.put("/api/v1/rooms/", "{}", content_type="application/json"),
        "415 coding": client_of.post(
            "/api/v1/rooms/create/",
            b"x",
            content_type="application/json",
            headers={"Content-Encoding": "gzip"},
        ),
        "400": client_of.get("/api/v1/rooms/", {"limit": "0"}),
    }

    for kind, response in answers.items():
        assert response["X-Content-Type-Options"] == "nosniff", kind
        assert response["Content-Security-Policy"] == _site_policy(), kind
        assert response["X-Frame-Options"] == "DENY", kind
        assert response["Referrer-Policy"] == "same-origin", kind


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ([(b"content-length", str(10 * 1024 * 1024).encode())], 413),
        ([(b"content-length", b"ten")], 400),
    ],
)
def test_the_body_limit_refusals_carry_the_security_headers(
    headers: list[tuple[bytes, bytes]], status: int
) -> None:
    # when the ASGI stack refuses a body before Django runs
    answer = run(application, http_scope("/api/v1/rooms/create/", headers), Sender([b"x"]))

    # then the refusal carries the same security headers as every other answer, once each
    assert answer.status == status
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["content-security-policy"] == _site_policy()
    names = [name.lower() for name, _ in answer.messages[0]["headers"]]
    assert len(names) == len(set(names))


def test_the_upload_handlers_refusals_carry_the_security_headers() -> None:
    # an upload path announcing a body on a method that takes none (files.asgi)
    answer = run(
        application,
        http_scope("/api/v1/uploads/abc", [(b"content-length", b"5")], method="DELETE"),
        Sender([b"hello"]),
    )

    assert answer.status >= 400
    for name in SECURITY_HEADERS:
        assert name in answer.headers, name


@pytest.mark.django_db(transaction=True)
def test_a_django_answer_through_the_asgi_stack_keeps_its_own_headers_once() -> None:
    answer = run(application, http_scope("/api/v1/rooms/", [], method="GET"), Sender([b""]))

    assert answer.status == 401
    names = [name.lower() for name, _ in answer.messages[0]["headers"]]
    for name in SECURITY_HEADERS:
        assert names.count(name.encode()) == 1, name


# --- RateLimit on every answer to a counted request ---------------------------------


def test_every_answer_to_a_signed_in_request_reports_the_request_budget(
    client_of: Client, room: Room, settings: Settings
) -> None:
    settings.SAFECHAT_API_RATE_LIMIT = (50, 60)
    answers = {
        "200 read": client_of.get(f"/api/v1/rooms/{room.pk}/"),
        "400 parameter": client_of.get("/api/v1/rooms/", {"limit": "0"}),
        "400 body": post_json(client_of, "/api/v1/rooms/create/", {"nmae": "x"}),
        "404 object": client_of.get("/api/v1/rooms/999999/"),
        "405": client_of.put("/api/v1/rooms/", "{}", content_type="application/json"),
        "415 media type": client_of.post("/api/v1/rooms/create/", "x", content_type="text/plain"),
        "200 profile": client_of.get("/api/v1/accounts/me/"),
    }

    remaining = []
    for kind, response in answers.items():
        assert response["RateLimit-Policy"] == '"api";q=50;w=60', kind
        current = response["RateLimit"]
        assert current.startswith('"api";r='), kind
        remaining.append(int(current.split(";r=")[1].split(";")[0]))
    # each counted once, in order
    assert remaining == list(range(49, 49 - len(answers), -1))


def test_a_request_over_the_budget_writes_nothing(
    client_of: Client, member: User, settings: Settings
) -> None:
    # given a budget of one request, spent
    settings.SAFECHAT_API_RATE_LIMIT = (1, 60)
    client_of.get("/api/v1/rooms/")

    # when a room is created past it
    response = post_json(client_of, "/api/v1/rooms/create/", {"name": "Late desk"})

    # then 429, and no room
    assert_problem(response, 429, "throttled")
    assert int(response["Retry-After"]) >= 1
    assert not Room.objects.filter(name="Late desk").exists()


def test_session_and_token_of_one_person_share_the_budget(
    client_of: Client, member: User, settings: Settings
) -> None:
    settings.SAFECHAT_API_RATE_LIMIT = (3, 60)
    _, secret = api_token_create(actor=member, name="ci", scope="read")

    client_of.get("/api/v1/rooms/")
    by_token = Client().get("/api/v1/rooms/", headers={"Authorization": f"Bearer {secret}"})

    assert by_token["RateLimit"].startswith('"api";r=1;')


def test_an_answer_before_anyone_is_known_reports_no_budget() -> None:
    response = Client().get("/api/v1/rooms/")

    assert response.status_code == 401
    assert "RateLimit" not in response


# --- query strings: UTF-8, as bodies are ------------------------------------------------


@pytest.mark.parametrize(
    "query",
    ["q=%FFann", "%FF=1", "q=ann&limit=%C3", "q=%ED%A0%80"],
    ids=["value", "name", "cut", "surrogate"],
)
def test_a_query_string_that_is_not_utf8_is_refused(client_of: Client, query: str) -> None:
    response = client_of.get(f"/api/v1/people/?{query}")

    body = assert_problem(response, 400, "malformed_utf8")
    assert "query string" in body["detail"]
    assert "\ufffd" not in response.content.decode()


def test_a_utf8_query_string_is_read_as_sent(client_of: Client) -> None:
    response = client_of.get("/api/v1/people/?q=J%C3%BCrgen+M")

    assert response.status_code == 200, response.content


def test_a_query_string_outside_the_api_is_left_to_its_page(client_of: Client) -> None:
    response = client_of.get("/rooms/?q=%FFann")

    assert response.status_code != 400 or "problem" not in response["Content-Type"]
