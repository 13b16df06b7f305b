"""The portal's error pages (404, 403, 405, 400, 500, a refused CSRF token) are its own pages:
the navigation back, the request id for support, no internals, the strict CSP; under
/api/ the same errors stay problem details. And /favicon.ico answers."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.http import HttpResponseNotAllowed
from django.test import Client, RequestFactory
from pytest_django import Settings

from accounts.models import ApiToken, User
from rooms import selectors as room_selectors
from safechat.middleware import MethodNotAllowedMiddleware
from tests.accounts.conftest import events
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

PROBLEM = "application/problem+json"


class _InlineCode(HTMLParser):
    """What a strict CSP would block: inline scripts, style attributes, event handlers."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "script" and "src" not in names and names.get("type") != "application/json":
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style>")
        for name, _ in attrs:
            if name == "style" or name.startswith("on"):
                self.problems.append(f"{name}= on <{tag}>")


def assert_portal_page(response: Any, status: int, heading: str) -> str:
    """``response`` is the portal's own page for ``status``: its layout and heading, a way
    back to the chat, the request id it was served under, no internals, never cached, no
    inline code, the strict CSP."""
    assert response.status_code == status
    assert response["Content-Type"].startswith("text/html")
    page: str = response.content.decode()
    assert '<header class="topbar">' in page
    assert f"<h1>{heading}</h1>" in page
    assert 'href="/rooms/">Back to your rooms</a>' in page
    assert f'<code class="request-id">{response["X-Request-ID"]}</code>' in page
    assert "Traceback" not in page
    assert "no-store" in response["Cache-Control"]
    parser = _InlineCode()
    parser.feed(page)
    assert parser.problems == []
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    return page


@pytest.fixture
def member() -> User:
    return make_user(username="member")


@pytest.fixture
def member_client(member: User) -> Client:
    return verified_client(member)


def test_an_unknown_page_is_the_portals_404_with_the_navigation(member_client: Client) -> None:
    response = member_client.get("/rooms/no-such-page/")

    page = assert_portal_page(response, 404, "Page not found")
    assert 'href="/rooms/mentions/">Mentions</a>' in page  # the signed-in navigation


def test_a_room_one_may_not_see_is_the_same_404_without_its_name(
    member_client: Client, member: User
) -> None:
    hidden = make_room(name="Project Falcon M&A")

    hidden_page = member_client.get("/rooms/", {"room": hidden.pk})
    missing_page = member_client.get("/rooms/", {"room": hidden.pk + 1000})

    assert_portal_page(hidden_page, 404, "Page not found")
    assert "Falcon" not in hidden_page.content.decode()
    strip = re.compile(
        rb'(name="csrfmiddlewaretoken" value="[^"]*")|(<code class="request-id">[^<]*)'
    )
    assert strip.sub(b"", hidden_page.content) == strip.sub(b"", missing_page.content)


def test_a_refusal_is_the_portals_403_in_its_own_words(member_client: Client, member: User) -> None:
    other = make_user()

    response = member_client.post(f"/accounts/admin/users/{other.pk}/deactivate/")

    page = assert_portal_page(response, 403, "Not allowed")
    assert "You are not allowed to do that." in page
    other.refresh_from_db()
    assert other.is_active
    assert [e.extra["reason"] for e in events("account.admin.refused")] == ["permission"]


def test_a_form_without_its_csrf_token_is_the_portals_403_saying_what_to_do(
    member: User,
) -> None:
    client = verified_client(member, enforce_csrf_checks=True)

    response = client.post("/accounts/tokens/", {"name": "ci", "scope": "read", "days": 30})

    page = assert_portal_page(response, 403, "Form expired")
    assert "reload the page" in page
    assert not ApiToken.objects.exists()
    assert not events("token.created")


def test_a_request_the_server_cannot_parse_is_the_portals_400(
    member_client: Client, settings: Settings
) -> None:
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
    form = {f"field{i}": "x" for i in range(10)} | {"name": "ci", "scope": "read", "days": 30}

    response = member_client.post("/accounts/tokens/", form)

    assert_portal_page(response, 400, "Bad request")
    assert not ApiToken.objects.exists()


def test_a_server_error_is_the_portals_500_without_internals(
    member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a fault deep in the chat page
    def broken(**_: object) -> None:
        raise RuntimeError("internal detail: table rooms_room is locked by pid 4242")

    monkeypatch.setattr(room_selectors, "room_list_for_user", broken)
    client = verified_client(member, raise_request_exception=False)

    # when the page is asked for
    response = client.get("/rooms/")

    # then the person gets the portal's page with the id to quote, and nothing of the fault
    page = assert_portal_page(response, 500, "Something went wrong")
    assert "internal detail" not in page
    assert "4242" not in page
    assert "RuntimeError" not in page


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/api/v1/no-such-endpoint/", 404, "not_found"), ("/api/v1/rooms", 404, "not_found")],
)
def test_api_paths_still_answer_problem_details(
    member_client: Client, path: str, status: int, code: str
) -> None:
    response = member_client.get(path)

    assert response.status_code == status
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == code
    assert response.json()["request_id"] == response["X-Request-ID"]


def test_an_api_server_error_is_still_a_problem_document(
    member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(**_: object) -> None:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(room_selectors, "room_list_for_user", broken)
    client = verified_client(member, raise_request_exception=False)

    response = client.get("/api/v1/rooms/")

    assert response.status_code == 500
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "server_error"
    assert "internal detail" not in response.content.decode()


@pytest.mark.parametrize("signed_in", [False, True])
def test_favicon_ico_leads_to_the_svg_icon(member: User, signed_in: bool) -> None:
    client = verified_client(member) if signed_in else Client()

    answer = client.get("/favicon.ico")

    assert answer.status_code == 302
    assert answer["Location"] == f"{django_settings.STATIC_URL}safechat/favicon.svg"
    assert "max-age=86400" in answer["Cache-Control"]
    icon = client.get(answer["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)  # type: ignore[attr-defined]


def test_favicon_ico_takes_no_writes() -> None:
    assert Client().post("/favicon.ico").status_code == 405


@pytest.mark.parametrize(
    "path",
    ["/rooms/{room}/archive/", "/rooms/{room}/members/add/", "/accounts/sign-out/",
     "/accounts/admin/lockouts/lift/"],
)  # fmt: skip
def test_opening_a_forms_address_is_the_portals_405_saying_what_to_do(
    member_client: Client, member: User, path: str
) -> None:
    # given a room the member owns, and addresses that only take a form's POST
    room = make_room(owner=member, name="Rates desk")
    before = len(events("room.archived"))

    # when one is opened as a page (a bookmark, a reload, a link pasted)
    response = member_client.get(path.format(room=room.pk))

    # then it is the portal's own page, with the reference and the methods it takes
    page = assert_portal_page(response, 405, "Not a page to open")
    assert response["Allow"] == "POST"
    assert "it is not a page to open, reload or bookmark. Nothing was done." in page
    assert 'href="/rooms/mentions/">Mentions</a>' in page  # the signed-in navigation
    # and nothing happened
    room.refresh_from_db()
    assert not room.is_archived
    assert len(events("room.archived")) == before


def test_a_post_to_a_page_that_only_reads_is_the_portals_405() -> None:
    response = Client().post("/favicon.ico")

    page = assert_portal_page(response, 405, "Not a page to open")
    assert response["Allow"] == "GET, HEAD"
    assert "does not take this kind of request" in page


def test_an_api_path_not_taking_the_method_still_answers_problem_details(
    member_client: Client,
) -> None:
    response = member_client.get("/api/v1/rooms/create/")

    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM
    assert response.json()["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_django_s_own_405_under_the_api_becomes_problem_details() -> None:
    # given an API path answered by one of Django's method decorators (an empty 405)
    request = RequestFactory().get("/api/v1/some-form-target/")
    request.request_id = "req-405-test"  # type: ignore[attr-defined]
    middleware = MethodNotAllowedMiddleware(lambda r: HttpResponseNotAllowed(["POST", "PUT"]))

    # when it passes the middleware
    response = middleware(request)

    # then it is a problem document, with the same Allow header
    assert response.status_code == 405
    assert response["Content-Type"] == PROBLEM
    assert response["Allow"] == "POST, PUT"
    body = json.loads(response.content)
    assert body["code"] == "method_not_allowed"
    assert body["detail"] == 'Method "GET" not allowed.'
