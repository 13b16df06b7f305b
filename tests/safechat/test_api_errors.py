"""Every API error is a problem document (RFC 9457) with a stable code; no input a client
can send is a 500; every API response is ``no-store``."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.core.exceptions import (
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404
from django.test import Client, RequestFactory
from pytest_django import Settings

from accounts.models import ApiToken, User
from accounts.services import api_token_create
from audit.models import AuditEvent
from rooms.models import Membership, Message, Room
from rooms.services import message_post
from safechat import urls
from tests.accounts.factories import make_user, sign_in_client
from tests.rooms.factories import make_room, make_room_admin

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"
PROBLEM_KEYS = {"type", "title", "status", "detail", "instance", "code", "request_id"}


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is a problem document of ``status`` and ``code``, never cached."""
    assert response.status_code == status, response.content
    assert response["Content-Type"] == PROBLEM
    assert response["Cache-Control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:safechat:problem:{code}"
    assert body["request_id"] == response["X-Request-ID"]
    assert "Traceback" not in response.content.decode()
    return body


@pytest.fixture
def member() -> User:
    return make_room_admin(username="member")


@pytest.fixture
def client_of(member: User) -> Client:
    client = Client()
    sign_in_client(client, member, verified=True)
    return client


@pytest.fixture
def room(member: User) -> Room:
    return make_room(owner=member, name="Rates desk")


def token_for(user: User, scope: str) -> str:
    _, secret = api_token_create(actor=user, name=f"t-{scope}", scope=scope)
    return secret


def test_a_field_error_names_the_field_by_pointer_with_its_code(client_of: Client) -> None:
    # when a room is created without a name
    response = client_of.post("/api/v1/rooms/create/", {}, content_type="application/json")

    # then the problem lists the field error, and nothing was created
    body = assert_problem(response, 400, "invalid")
    assert body["errors"] == [
        {"pointer": "#/name", "code": "required", "detail": "This field is required."}
    ]
    assert body["instance"] == "/api/v1/rooms/create/"
    assert not Room.objects.exists()


def test_list_item_errors_point_at_the_item(client_of: Client) -> None:
    response = client_of.post(
        "/api/v1/direct/", {"participants": [1, "x"]}, content_type="application/json"
    )

    body = assert_problem(response, 400, "invalid")
    assert [e["pointer"] for e in body["errors"]] == ["#/participants/1"]
    assert body["errors"][0]["code"] == "invalid"


def test_a_person_listed_twice_in_a_direct_conversation_is_refused_at_the_repeat(
    client_of: Client,
) -> None:
    # given someone to talk to
    peer = make_user(username="peer")

    # when they are listed twice
    response = client_of.post(
        "/api/v1/direct/", {"participants": [peer.pk, peer.pk]}, content_type="application/json"
    )

    # then the repeat is refused where it stands, and no conversation was made
    body = assert_problem(response, 400, "invalid")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [
        ("#/participants/1", "duplicate")
    ]
    assert not Room.objects.exists()


def test_listing_a_direct_conversation_is_a_400_pointing_at_visibility(
    client_of: Client, member: User
) -> None:
    # given a direct conversation of the member's
    from rooms.services import direct_conversation_create

    peer = make_user(username="peer")
    direct = direct_conversation_create(actor=member, participants=[peer])
    refusals = AuditEvent.objects.filter(action="access.refused").count()

    # when they ask for it to be listed
    response = client_of.patch(
        f"/api/v1/rooms/{direct.pk}/", {"visibility": "listed"}, content_type="application/json"
    )

    # then it is invalid input, at the field, and nothing changed or was refused as access
    body = assert_problem(response, 400, "invalid")
    assert [e["pointer"] for e in body["errors"]] == ["#/visibility"]
    assert Room.objects.get(pk=direct.pk).visibility == Room.Visibility.PRIVATE
    assert AuditEvent.objects.filter(action="access.refused").count() == refusals


def test_a_service_validation_error_is_a_problem_not_a_bare_list(
    client_of: Client, room: Room
) -> None:
    # given a message of only whitespace, which the service refuses
    response = client_of.post(
        f"/api/v1/rooms/{room.pk}/messages/", {"text": "   "}, content_type="application/json"
    )

    # then it is one problem pointing at the field the service refused
    body = assert_problem(response, 400, "invalid")
    assert body["errors"] == [
        {"pointer": "#/text", "code": "invalid", "detail": "a message cannot be empty"}
    ]
    assert body["detail"] == "text: a message cannot be empty"
    assert not Message.objects.exists()


def test_a_service_refusal_is_a_403_problem_and_is_recorded(client_of: Client, room: Room) -> None:
    # given a room the member cannot manage members of, as a read-only member
    reader = make_user(username="reader")
    from rooms.services import membership_add

    membership_add(actor=room_owner(room), room=room, user=reader, role="read_only")
    client = Client()
    sign_in_client(client, reader, verified=True)
    outsider = make_user(username="outsider")
    added_before = AuditEvent.objects.filter(action="room.member.added").count()

    response = client.post(
        f"/api/v1/rooms/{room.pk}/members/",
        {"user_id": outsider.pk},
        content_type="application/json",
    )

    body = assert_problem(response, 403, "permission_denied")
    assert body["detail"]
    assert not Membership.objects.filter(user=outsider).exists()
    refusal = AuditEvent.objects.filter(action="room.access.denied").get()
    assert refusal.actor_id == reader.pk
    assert AuditEvent.objects.filter(action="room.member.added").count() == added_before


def room_owner(room: Room) -> User:
    return Membership.objects.get(room=room, role="owner").user


def test_the_middleware_401_is_a_problem_with_a_challenge() -> None:
    response = Client().get("/api/v1/rooms/")

    assert_problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_invalid_token_is_a_401_problem_with_a_challenge() -> None:
    response = Client().get("/api/v1/rooms/", headers={"Authorization": "Bearer sct_nope_x"})

    assert_problem(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_an_unverified_session_is_a_403_problem(member: User) -> None:
    client = Client()
    sign_in_client(client, member, verified=False)

    response = client.get("/api/v1/rooms/")

    assert_problem(response, 403, "second_factor_required")


@pytest.mark.parametrize(
    "path", ["/api/v1/nowhere/", "/api/v1/rooms/999999/", "/api/v2/rooms/", "/api/"]
)
def test_a_route_or_object_not_found_under_the_api_is_a_404_problem(
    client_of: Client, path: str
) -> None:
    response = client_of.get(path)

    assert_problem(response, 404, "not_found")


def test_the_portal_keeps_its_html_404(client_of: Client) -> None:
    response = client_of.get("/rooms/no-such-page/")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(client_of: Client) -> None:
    response = client_of.put("/api/v1/rooms/", {}, content_type="application/json")

    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=BoUnDaRy",
    ],
)
def test_a_body_of_another_type_is_a_415_problem(client_of: Client, content_type: str) -> None:
    response = client_of.post("/api/v1/rooms/create/", b"name=x", content_type=content_type)

    assert_problem(response, 415, "unsupported_media_type")
    assert not Room.objects.exists()


def test_a_rate_limited_write_is_a_429_problem_with_retry_after(
    client_of: Client, settings: Settings
) -> None:
    # given a budget of one room creation per minute, spent
    settings.SAFECHAT_ROOM_CREATE_RATE_LIMIT = (1, 60)
    first = client_of.post("/api/v1/rooms/create/", {"name": "a"}, content_type="application/json")
    assert first.status_code == 201

    # when a second comes at once
    response = client_of.post(
        "/api/v1/rooms/create/", {"name": "b"}, content_type="application/json"
    )

    # then it is a 429 with one clear sentence and Retry-After, and nothing was created
    body = assert_problem(response, 429, "throttled")
    wait = int(response["Retry-After"])
    assert 0 < wait <= 60
    assert body["detail"] == f"Too many requests; try again in {wait} s."
    assert Room.objects.count() == 1


def test_options_shows_no_docstring(client_of: Client) -> None:
    response = client_of.options("/api/v1/rooms/")

    assert response.status_code == 200
    assert "description" not in response.json()
    assert response["Cache-Control"] == "no-store"


def test_format_xml_is_an_ordinary_query_parameter(client_of: Client, room: Room) -> None:
    # never DRF's renderer switch: a room's answer is JSON, whatever ?format says
    response = client_of.get(f"/api/v1/rooms/{room.pk}/?format=xml")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json()["id"] == room.pk


def test_format_on_a_list_is_an_unknown_parameter_like_any_other(
    client_of: Client, room: Room
) -> None:
    response = client_of.get("/api/v1/rooms/?format=xml")

    body = assert_problem(response, 400, "invalid")
    assert [(e["parameter"], e["code"]) for e in body["errors"]] == [("format", "unknown")]


# --- bad input: a 4xx, never a 500 -------------------------------------------------


def test_json_over_the_memory_limit_is_a_413_problem(client_of: Client, settings: Settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = b'{"name": "' + b"x" * 2000 + b'"}'

    response = client_of.post("/api/v1/rooms/create/", body, content_type="application/json")

    assert_problem(response, 413, "payload_too_large")
    assert not Room.objects.exists()


def test_json_nested_a_thousand_deep_is_a_400_problem(client_of: Client) -> None:
    body = b"[" * 1000 + b"]" * 1000

    response = client_of.post("/api/v1/rooms/create/", body, content_type="application/json")

    assert_problem(response, 400, "nesting_too_deep")


def test_json_nested_deep_inside_an_object_is_a_400_problem(client_of: Client) -> None:
    body = b'{"name": ' + b"[" * 5000 + b"]" * 5000 + b"}"

    response = client_of.post("/api/v1/rooms/create/", body, content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    assert not Room.objects.exists()


def test_malformed_utf8_is_a_400_problem(client_of: Client) -> None:
    response = client_of.post(
        "/api/v1/rooms/create/", b'{"name": "\xff\xfe"}', content_type="application/json"
    )

    body = assert_problem(response, 400, "malformed_utf8")
    assert body["detail"] == "The body is not valid UTF-8."


def test_malformed_json_is_a_400_problem(client_of: Client) -> None:
    response = client_of.post(
        "/api/v1/rooms/create/", b'{"name": ', content_type="application/json"
    )

    body = assert_problem(response, 400, "parse_error")
    assert body["detail"].startswith("The body is not valid JSON")


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "Rates", "name": "Credit"}',
        b'{"name": "Rates", "topic": {"a": 1, "a": 2}}',
    ],
)
def test_json_with_a_name_twice_in_one_object_is_a_400_problem(
    client_of: Client, body: bytes
) -> None:
    # (RFC 8259: names should be unique; parsers disagree on which one counts, so a
    # proxy that checked the first would see another body than the room created)
    response = client_of.post("/api/v1/rooms/create/", body, content_type="application/json")

    problem = assert_problem(response, 400, "duplicate_key")
    assert "name" in problem["detail"] or '"a"' in problem["detail"]
    assert not Room.objects.exists()


def csrf_checked_client(user: User) -> Client:
    """A browser-like session client: DRF's CSRF check reads a form body as Django does."""
    from django.conf import settings
    from django.middleware.csrf import _get_new_csrf_string

    client = Client(enforce_csrf_checks=True)
    sign_in_client(client, user, verified=True)
    # A CSRF cookie and no header: the check then looks for the token in the form body.
    client.cookies[settings.CSRF_COOKIE_NAME] = _get_new_csrf_string()
    return client


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        # more fields than Django parses, a form over the memory limit, too many files
        ("application/x-www-form-urlencoded", "&".join(f"f{i}=1" for i in range(50))),
        ("application/x-www-form-urlencoded", "name=" + "x" * 2000),
        (
            "multipart/form-data; boundary=B",
            "".join(
                f'--B\r\nContent-Disposition: form-data; name="f{i}"; filename="{i}.txt"\r\n'
                "Content-Type: text/plain\r\n\r\nx\r\n"
                for i in range(5)
            )
            + "--B--\r\n",
        ),
    ],
)
def test_a_form_body_is_never_parsed_it_is_a_415_problem(
    member: User, settings: Settings, content_type: str, body: str
) -> None:
    # given limits a form body would break, and a session whose CSRF check reads the body
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000

    response = csrf_checked_client(member).post(
        "/api/v1/rooms/create/", body, content_type=content_type
    )

    # then the API parses JSON only: nothing is spooled or parsed as a form
    assert_problem(response, 415, "unsupported_media_type")
    assert not Room.objects.exists()


@pytest.mark.parametrize(
    ("exception", "status", "code"),
    [
        (RequestDataTooBig(), 413, "payload_too_large"),
        (TooManyFieldsSent(), 400, "too_many_fields"),
        (TooManyFilesSent(), 400, "too_many_files"),
        (DisallowedHost(), 400, "bad_request"),
        (Http404(), 404, "not_found"),
        (PermissionDenied("no"), 403, "permission_denied"),
    ],
)
def test_django_errors_raised_before_a_view_are_problems_under_the_api(
    exception: Exception, status: int, code: str
) -> None:
    # given Django's handler for the status, called as Django calls it for an exception
    # raised in middleware (a body read there, a route no view serves)
    handler = {400: urls.handler400, 403: urls.handler403, 404: urls.handler404}
    handler[413] = urls.handler400
    request = RequestFactory().post("/api/v1/rooms/create/")

    response = handler[status](request, exception)

    assert_problem_body(response, status, code)


def test_django_errors_outside_the_api_keep_the_portal_pages() -> None:
    request = RequestFactory().get("/rooms/x/")

    response = urls.handler404(request, Http404())

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def assert_problem_body(response: Any, status: int, code: str) -> None:
    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["code"] == code
    assert body["status"] == status


def test_a_json_body_with_a_session_but_no_csrf_token_is_a_403_problem(member: User) -> None:
    response = csrf_checked_client(member).post(
        "/api/v1/rooms/create/", {"name": "x"}, content_type="application/json"
    )

    body = assert_problem(response, 403, "permission_denied")
    assert "CSRF" in body["detail"]
    assert not Room.objects.exists()


def test_an_unhandled_error_is_a_500_problem_without_its_text(
    client_of: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rooms import selectors

    def explode(**_: Any) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(selectors, "room_list_for_user", explode)

    response = client_of.get("/api/v1/rooms/")

    body = assert_problem(response, 500, "server_error")
    assert "secret internals" not in response.content.decode()
    assert "request id" in body["detail"]


def test_a_token_without_the_scope_is_a_403_problem(member: User) -> None:
    secret = token_for(member, "read")

    response = Client().post(
        "/api/v1/rooms/create/",
        {"name": "x"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )

    assert_problem(response, 403, "permission_denied")
    assert not Room.objects.exists()
    assert ApiToken.objects.count() == 1


# --- a sweep: every route under /api/, every kind of error -------------------------


def api_paths(room: Room, message_id: int, user_id: int) -> list[str]:
    """Every route under /api/, its ids filled with real ones."""
    from django.urls import URLPattern, URLResolver, get_resolver

    def walk(patterns: list[Any], prefix: str) -> list[str]:
        found: list[str] = []
        for pattern in patterns:
            route = prefix + str(pattern.pattern)
            if isinstance(pattern, URLResolver):
                found += walk(pattern.url_patterns, route)
            elif isinstance(pattern, URLPattern):
                found.append(route)
        return found

    ids = {
        "room_id": room.pk,
        "message_id": message_id,
        "user_id": user_id,
        "token_id": 1,
        # ids of the file vault (uuids): unknown ones, which must answer a problem too
        "upload_id": "00000000-0000-4000-8000-000000000000",
        "file_id": "00000000-0000-4000-8000-000000000001",
    }
    paths = []
    for route in walk(get_resolver().url_patterns, "/"):
        if not route.startswith("/api/"):
            continue
        for name, value in ids.items():
            route = re.sub(rf"<(int|str):{name}>", str(value), route)
        # any other id (an upload's, a file's): one that names nothing, still an answer
        route = re.sub(r"<uuid:\w+>", "00000000-0000-0000-0000-000000000000", route)
        route = re.sub(r"<\w+:\w+>", "1", route)
        assert "<" not in route, route
        paths.append(route)
    return paths


def test_every_api_answer_is_no_store_and_every_error_a_problem(member: User, room: Room) -> None:
    # given a member with a message in a room, a session client and a read token
    from rooms.services import message_post

    message = message_post(sender=member, room=room, text="hello")
    session = Client()
    sign_in_client(session, member, verified=True)
    read_token = {"Authorization": f"Bearer {token_for(member, 'read')}"}
    calls: list[tuple[str, str, dict[str, Any]]] = []
    for path in api_paths(room, message.pk, member.pk):
        calls += [
            ("get", path, {}),
            ("get", path + "?limit=x&before=y&since=z&format=xml", {}),
            ("post", path, {"data": b"not json", "content_type": "application/json"}),
            ("post", path, {"data": b"[]", "content_type": "application/json"}),
            ("patch", path, {"data": b"x", "content_type": "text/plain"}),
            ("put", path, {"data": {}, "content_type": "application/json"}),
            ("delete", path + "9999/", {}),
            ("options", path, {}),
        ]
    seen: set[tuple[int, str]] = set()

    # when each is called by a session, a read token and nobody
    for method, path, kwargs in calls:
        for client, headers in ((session, {}), (Client(), read_token), (Client(), {})):
            response = getattr(client, method)(path, headers=headers, **kwargs)

            # then nothing is a 500, every answer is no-store, every error a problem
            assert response.status_code < 500, (method, path, response.content)
            assert response["Cache-Control"] == "no-store", (method, path)
            if response.status_code >= 400:
                body = assert_problem(response, response.status_code, response.json()["code"])
                seen.add((response.status_code, body["code"]))
    statuses = {status for status, _ in seen}
    assert {400, 401, 403, 404, 405, 415} <= statuses, seen


# --- rate limit headers -----------------------------------------------------------


def test_a_counted_write_reports_its_limit_in_ratelimit_headers(
    client_of: Client, settings: Settings
) -> None:
    # given a budget of 3 room creations in any 60 s
    settings.SAFECHAT_ROOM_CREATE_RATE_LIMIT = (3, 60)

    answers = [
        client_of.post("/api/v1/rooms/create/", {"name": n}, content_type="application/json")
        for n in ("a", "b", "c", "d")
    ]

    # then each answer names the policy and what remains of it, down to the refusal,
    # after the request budget every API request counts against
    assert [a.status_code for a in answers] == [201, 201, 201, 429]
    api = settings.SAFECHAT_API_RATE_LIMIT
    for answer in answers:
        assert answer["RateLimit-Policy"] == (
            f'"api";q={api[0]};w={api[1]}, "room-create";q=3;w=60'
        )
    writes = [answer["RateLimit"].split(", ")[1] for answer in answers]
    remaining = [write.split(";")[1] for write in writes]
    assert remaining == ["r=2", "r=1", "r=0", "r=0"]
    reset = int(writes[-1].split(";t=")[1])
    assert 0 < reset <= 60
    assert reset == int(answers[-1]["Retry-After"])


def test_a_read_reports_the_request_budget_it_counted_against(
    client_of: Client, settings: Settings
) -> None:
    # given a budget of 5 API requests in any 60 s
    settings.SAFECHAT_API_RATE_LIMIT = (5, 60)

    answers = [client_of.get("/api/v1/rooms/") for _ in range(6)]

    # then every answer, reads and the refusal alike, reports it; the sixth is refused
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert {a["RateLimit-Policy"] for a in answers} == {'"api";q=5;w=60'}
    assert [a["RateLimit"].split(";")[1] for a in answers] == [
        "r=4", "r=3", "r=2", "r=1", "r=0", "r=0",
    ]  # fmt: skip
    assert_problem(answers[-1], 429, "throttled")
    assert answers[-1]["RateLimit"].endswith(f";t={answers[-1]['Retry-After']}")


# --- documentation pages --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        (
            "/api/docs/",
            ["swagger-ui-dist/swagger-ui-bundle.js", "swagger-ui-dist/swagger-ui.css"],
        ),
        ("/api/docs/redoc/", ["redoc/bundles/redoc.standalone.js"]),
    ],
)
def test_the_docs_load_only_our_own_scripts_under_the_csp(
    client_of: Client, path: str, assets: list[str]
) -> None:
    import re

    from django.contrib.staticfiles import finders

    # when a verified user opens the documentation page
    response = client_of.get(path)

    # then every script and stylesheet is one of our static files, and they exist
    assert response.status_code == 200
    page = response.content.decode()
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert sources
    for source in sources:
        assert source.startswith(("/static/", "/api/docs/")), source
        if source.startswith("/static/"):
            assert finders.find(source.removeprefix("/static/")) is not None, source
    for asset in assets:
        assert any(s.endswith(asset) for s in sources), asset
    # no inline script, and the CSP allows scripts from this origin only
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page)
    csp = response["Content-Security-Policy"]
    assert "script-src 'self';" in csp + ";"
    assert "http" not in page.split("<body", 1)[1].replace("http-equiv", "")


def test_the_swagger_start_up_script_is_a_file_of_its_own(client_of: Client) -> None:
    response = client_of.get("/api/docs/?script=")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert b"/api/schema/" in response.content


def test_the_portal_links_the_api_docs(client_of: Client) -> None:
    response = client_of.get("/accounts/")

    assert b'href="/api/docs/"' in response.content


def test_an_answer_the_client_does_not_accept_is_a_406_problem(client_of: Client) -> None:
    response = client_of.get("/api/v1/rooms/", headers={"Accept": "text/html"})

    assert_problem(response, 406, "not_acceptable")


@pytest.mark.parametrize(
    "accept",
    [
        "application/problem+json",
        "application/json, application/problem+json",
        "application/*",
        "text/html;q=0.9, */*;q=0.1",
        "application/json;q=0.5",
    ],
)
def test_an_accept_that_admits_json_or_problem_details_is_answered(
    client_of: Client, accept: str
) -> None:
    response = client_of.get("/api/v1/rooms/", headers={"Accept": accept})

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "accept",
    [
        "application/json;q=0",
        "application/json;q=0, */*",
        "*/*;q=0",
        "text/html, application/*;q=0",
    ],
)
def test_an_accept_that_refuses_json_with_quality_zero_is_a_406(
    client_of: Client, accept: str
) -> None:
    response = client_of.get("/api/v1/rooms/", headers={"Accept": accept})

    assert_problem(response, 406, "not_acceptable")


def test_refused_tokens_report_what_remains_of_the_address_budget(settings: Settings) -> None:
    # given at most 2 refused tokens per address in any 60 s
    settings.SAFECHAT_TOKEN_FAILURE_LIMIT = (2, 60)
    wrong = {"Authorization": "Bearer sct_00000000_wrong"}

    answers = [Client().get("/api/v1/rooms/", headers=wrong) for _ in range(3)]

    # then each refusal says what remains, and the third is throttled
    assert [a.status_code for a in answers] == [401, 401, 429]
    assert {a["RateLimit-Policy"] for a in answers} == {'"token-failures";q=2;w=60'}
    assert [a["RateLimit"].split(";")[1] for a in answers] == ["r=1", "r=0", "r=0"]
    assert_problem(answers[2], 429, "throttled")
    assert answers[2]["RateLimit"].endswith(f";t={answers[2]['Retry-After']}")


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_an_api_path_without_its_trailing_slash_is_a_404_naming_the_path_meant(
    client_of: Client, member: User, method: str
) -> None:
    # given a room, and its API path with the trailing slash dropped
    room = make_room(owner=member, name="Desk talk")
    path = f"/api/v1/rooms/{room.pk}/messages"

    # when it is asked for with any method
    body_of = {} if method == "get" else {"data": json.dumps({"text": "lost?"})}
    response = getattr(client_of, method)(path, content_type="application/json", **body_of)

    # then it is a problem document naming the path meant, never a redirect or HTML,
    # and nothing is written
    body = assert_problem(response, 404, "not_found")
    assert f"did you mean {path}/?" in body["detail"]
    assert "Location" not in response
    assert not Message.objects.filter(room=room).exists()


@pytest.mark.parametrize(
    "path", ["/api/v1/audit/export", "/api/v1/uploads/0123456789abcdef0123456789abcdef"]
)
def test_a_slash_added_to_a_path_that_takes_none_is_a_404_naming_the_path_meant(
    client_of: Client, path: str
) -> None:
    response = client_of.get(f"{path}/")

    body = assert_problem(response, 404, "not_found")
    assert f"did you mean {path}?" in body["detail"]
    assert "Location" not in response


def test_an_api_path_that_names_nothing_even_with_a_slash_is_a_plain_404(
    client_of: Client,
) -> None:
    body = assert_problem(client_of.get("/api/v1/nowhere"), 404, "not_found")
    assert "slash" not in body["detail"]


def test_the_portal_still_appends_the_slash(client_of: Client) -> None:
    response = client_of.get("/rooms/mentions")
    assert response.status_code == 301
    assert response["Location"] == "/rooms/mentions/"


@pytest.mark.parametrize(
    ("method", "text", "code"),
    [
        ("post", "   ", "invalid"),
        ("post", "\u200b\ufeff", "invalid"),
        ("post", "ring\u0007", "control_character"),
        ("post", "x" * 16385, "message_too_long"),
        ("patch", "   ", "invalid"),
        ("patch", "x" * 16385, "message_too_long"),
    ],
)
def test_a_refused_message_text_points_at_the_text_field(
    client_of: Client, member: User, room: Room, method: str, text: str, code: str
) -> None:
    # given a message to edit
    original = message_post(sender=member, room=room, text="first")
    path = f"/api/v1/rooms/{room.pk}/messages/"
    if method == "patch":
        path += f"{original.pk}/"

    # when a post or an edit sends a text the service refuses (blank, or one byte over)
    response = getattr(client_of, method)(
        path, json.dumps({"text": text}), content_type="application/json"
    )

    # then the one error points at the text, and nothing new was stored
    body = assert_problem(response, 400, "invalid")
    assert [(e["pointer"], e["code"]) for e in body["errors"]] == [("#/text", code)]
    assert list(Message.objects.values_list("pk", "revision")) == [(original.pk, original.revision)]


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in [key, *_strings_in(item)]]
    if isinstance(value, list):
        return [s for item in value for s in _strings_in(item)]
    return [value] if isinstance(value, str) else []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/rooms/create/", '{"name": "Desk", "\\ud800": 1}'),
        ("/api/v1/rooms/create/", '{"name": "Desk", "visibility": "\\ud800"}'),
        ("/api/v1/rooms/create/", '{"name": "Desk", "\\udfff": 1, "\\udfff": 2}'),
        ("/api/v1/rooms/ROOM/mute/", '{"mute": "x\\ud800"}'),
        ("/api/v1/rooms/ROOM/members/", '{"user_id": 1, "role": "\\ud83d"}'),
        ("/api/v1/accounts/tokens/", '{"name": "ci", "scope": "\\udc00read"}'),
    ],
    ids=["member-name", "choice", "duplicate-name", "mute", "role", "scope"],
)
def test_a_lone_surrogate_echoed_in_an_error_is_a_400_problem_in_strict_utf8(
    client_of: Client, member: User, room: Room, path: str, body: str
) -> None:
    # given a JSON body whose escapes name a lone surrogate where an error quotes the input
    # (a choice, a member's name): valid JSON, but not text UTF-8 can carry (RFC 8259 8.2)
    client_of.post(  # (an admin session may also create tokens)
        "/api/v1/rooms/create/", {"name": "warm-up"}, content_type="application/json"
    )
    rooms_before = set(Room.objects.values_list("pk", flat=True))
    tokens_before = ApiToken.objects.count()
    events_before = AuditEvent.objects.count()

    # when it is posted
    response = client_of.post(
        path.replace("ROOM", str(room.pk)), body, content_type="application/json"
    )

    # then the answer is a 400 problem, itself strict UTF-8 with no lone surrogate in any
    # string (a strict client's decoder would fail on one), and nothing was written
    assert response.status_code == 400, response.content
    response.content.decode("utf-8")  # strict
    problem = assert_problem(response, 400, response.json()["code"])
    assert problem["code"] in {"invalid", "duplicate_key"}
    for text in _strings_in(problem):
        text.encode("utf-8")  # strict: raises for a lone surrogate
    assert set(Room.objects.values_list("pk", flat=True)) == rooms_before
    assert ApiToken.objects.count() == tokens_before
    assert AuditEvent.objects.count() == events_before


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        ('{"mute": "\\udc00"}', "#/mute"),
        ('{"mute": "all", "x": ["ok", "\\ud800"]}', "#/x/1"),
        ('{"\\ud800": "all"}', "#"),
    ],
)
def test_a_lone_surrogate_is_refused_where_it_stands(
    client_of: Client, room: Room, body: str, pointer: str
) -> None:
    # when a body holds a lone surrogate in a value, deep in a list, or in a member's name
    response = client_of.post(
        f"/api/v1/rooms/{room.pk}/mute/", body, content_type="application/json"
    )

    # then the one error points at the string (at the object, for a name), and the mute
    # setting is unchanged
    problem = assert_problem(response, 400, "invalid")
    assert [(e["pointer"], e["code"]) for e in problem["errors"]] == [
        (pointer, "surrogate_characters_not_allowed")
    ]
    assert Membership.objects.get(room=room).mute == Membership.Mute.OFF


@pytest.mark.parametrize(
    "version", ["%0d%0aSet-Cookie:%20x=1", 'a"b', "2.0"], ids=["crlf", "quote", "other"]
)
def test_the_schema_takes_no_version_parameter_and_reflects_none(
    client_of: Client, version: str
) -> None:
    # (drf-spectacular would write ?version= into the document's info.version and into the
    # Content-Disposition header: a line break there was a 500, a quote a broken header)
    response = client_of.get(f"/api/schema/?version={version}")

    problem = assert_problem(response, 400, "invalid")
    assert [(e["parameter"], e["code"]) for e in problem["errors"]] == [("version", "unknown")]
    assert "Content-Disposition" not in response


def test_the_schema_names_its_one_version(client_of: Client) -> None:
    response = client_of.get("/api/schema/", headers={"Accept": "application/json"})

    assert response.status_code == 200
    assert response.json()["info"]["version"] == "1.0.0"
    assert response["Content-Disposition"] == 'inline; filename="SafeChat API.json"'
