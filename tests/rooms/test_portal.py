"""The chat portal over HTTP: the page, its access rules and its form endpoints."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.models import User
from audit.actions import AuditAction
from audit.models import AuditEvent
from rooms.models import Membership, Room
from rooms.services import membership_add, message_post
from safechat.keyring.errors import IntegrityFailure
from safechat.keyring.models import ComplianceKeyPair, RoomEpoch, SealedEpochKey
from safechat.keyring.services import clear_key_caches
from safechat.middleware import INTEGRITY_FAILURE_MESSAGE, IntegrityFailureMiddleware
from tests.accounts.factories import make_totp_device, make_user, sign_in_client
from tests.rooms.factories import make_room
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

PORTAL_NOT_ADDABLE = (
    "“{}” cannot be added to this room: either no active colleague has that username, or an"
    " information barrier or their role keeps them out of it."
)

CHAT = "/rooms/"


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """The posting limit counts per user id in the cache, which outlives a test: ids
    are reused from test to test, so earlier tests' posts would count against ours."""
    cache.clear()


def audited(action: str, room: Room) -> int:
    return AuditEvent.objects.filter(
        action=action, target_type="rooms.room", target_id=str(room.pk)
    ).count()


def member_of(room: Room, user: User) -> Membership | None:
    return Membership.objects.filter(room=room, user=user).first()


def make_room_member(owner: User, room: Room, user: User, role: str) -> None:
    membership_add(actor=owner, room=room, user=user, role=role)


def flash(response: object) -> list[str]:
    return [str(m) for m in response.context["messages"]]  # type: ignore[attr-defined]


# --- The page -----------------------------------------------------------------------------
def test_a_verified_member_sees_the_room_list_and_decrypted_messages() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,), name="Rates desk")
    make_room(owner=owner, members=(member,), name="FX desk")
    message_post(sender=owner, room=room, text="Fill at **99.5**")
    message_post(sender=owner, room=room, text="<script>alert(1)</script>")

    response = verified_client(member).get(CHAT, {"room": room.pk})

    assert response.status_code == 200
    page = response.content.decode()
    assert "Rates desk" in page
    assert "FX desk" in page
    assert "<strong>99.5</strong>" in page  # the sanitised Markdown rendering
    assert "<script>alert(1)</script>" not in page
    assert 'aria-current="page"' in page


def test_replies_are_shown_in_their_thread() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    first = message_post(sender=owner, room=room, text="Who has the book?")
    message_post(sender=member, room=room, text="I do", parent_id=first.pk)

    response = verified_client(member).get(CHAT, {"room": room.pk})

    threads = response.context["threads"]
    assert [t.message.id for t in threads] == [first.pk]
    assert [r.text for r in threads[0].replies] == ["I do"]


def test_without_a_room_parameter_the_first_live_room_is_shown() -> None:
    member = make_user()
    make_room(members=(member,), name="Alpha")

    response = verified_client(member).get(CHAT)

    assert response.status_code == 200
    assert response.context["room"].name == "Alpha"


def test_a_user_in_no_room_gets_an_empty_page() -> None:
    response = verified_client(make_user()).get(CHAT)

    assert response.status_code == 200
    assert response.context["room"] is None
    assert "not in any room yet" in response.content.decode()


@pytest.mark.parametrize("wanted", ["other", "999999", "abc"])
def test_a_room_the_user_is_not_in_is_a_404_without_its_name(wanted: str) -> None:
    member = make_user()
    make_room(members=(member,), name="Public desk")
    other = make_room(name="Project Falcon M&A")
    room_id = str(other.pk) if wanted == "other" else wanted

    response = verified_client(member).get(CHAT, {"room": room_id})

    assert response.status_code == 404
    assert "Falcon" not in response.content.decode()


def test_anonymous_visitors_are_sent_to_sign_in() -> None:
    response = Client().get(CHAT)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:sign-in"))
    assert "next=%2Frooms%2F" in response["Location"]


def test_a_password_only_session_is_sent_to_the_second_factor() -> None:
    user = make_user()
    make_totp_device(user)
    client = Client()
    sign_in_client(client, user, verified=False)

    page = client.get(CHAT)
    form = client.post(f"/rooms/{make_room(members=(user,)).pk}/settings/", {"name": "x"})

    assert page.status_code == 302
    assert page["Location"].startswith(reverse("accounts:second-factor"))
    assert form.status_code == 302
    assert form["Location"].startswith(reverse("accounts:second-factor"))


class _InlineCode(HTMLParser):
    """Collects what CSP would block: inline scripts, style attributes, event handlers."""

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


def test_the_page_has_no_inline_code_and_sends_a_csp() -> None:
    owner = make_user()
    room = make_room(owner=owner)
    message_post(sender=owner, room=room, text="[link](https://example.com) and `code`")

    response = verified_client(owner).get(CHAT, {"room": room.pk})
    parser = _InlineCode()
    parser.feed(response.content.decode())

    assert parser.problems == []
    assert 'type="application/json"' in response.content.decode()
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "connect-src 'self'" in policy


def test_owners_see_the_settings_and_plain_members_do_not() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    as_owner = verified_client(owner).get(CHAT, {"room": room.pk}).content.decode()
    as_member = verified_client(member).get(CHAT, {"room": room.pk}).content.decode()

    assert f"/rooms/{room.pk}/settings/" in as_owner
    assert f"/rooms/{room.pk}/members/add/" in as_owner
    assert f"/rooms/{room.pk}/settings/" not in as_member
    assert f"/rooms/{room.pk}/members/add/" not in as_member


# --- Room settings --------------------------------------------------------------------------
def test_an_owner_renames_the_room() -> None:
    owner = make_user()
    room = make_room(owner=owner, name="Old name")

    response = verified_client(owner).post(
        f"/rooms/{room.pk}/settings/",
        {"name": "New name", "topic": "Rates", "history_visible": "on"},
        follow=True,
    )

    room.refresh_from_db()
    assert (room.name, room.topic, room.history_visible) == ("New name", "Rates", True)
    assert "Room settings saved." in flash(response)
    assert audited(AuditAction.ROOM_UPDATED, room) == 1


def test_a_plain_member_cannot_change_the_settings() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,), name="Kept")

    response = verified_client(member).post(f"/rooms/{room.pk}/settings/", {"name": "Taken"})

    room.refresh_from_db()
    assert response.status_code == 403
    assert room.name == "Kept"
    assert audited(AuditAction.ROOM_UPDATED, room) == 0
    assert audited(AuditAction.ROOM_ACCESS_DENIED, room) == 1


def test_invalid_settings_are_explained_and_change_nothing() -> None:
    owner = make_user()
    room = make_room(owner=owner, name="Kept")

    response = verified_client(owner).post(
        f"/rooms/{room.pk}/settings/", {"name": "x" * 500}, follow=True
    )

    room.refresh_from_db()
    assert room.name == "Kept"
    assert any(m.startswith("Name:") for m in flash(response))


def test_an_owner_archives_and_a_member_cannot() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    refused = verified_client(member).post(f"/rooms/{room.pk}/archive/")
    room.refresh_from_db()
    assert refused.status_code == 403
    assert room.archived_at is None
    assert audited(AuditAction.ROOM_ARCHIVED, room) == 0

    verified_client(owner).post(f"/rooms/{room.pk}/archive/")
    room.refresh_from_db()
    assert room.archived_at is not None
    assert audited(AuditAction.ROOM_ARCHIVED, room) == 1


def test_someone_outside_the_room_gets_a_404_from_its_forms() -> None:
    room = make_room(name="Hidden")
    stranger = make_user()

    response = verified_client(stranger).post(f"/rooms/{room.pk}/settings/", {"name": "Mine"})

    room.refresh_from_db()
    assert response.status_code == 404
    assert room.name == "Hidden"


def test_the_form_endpoints_refuse_get() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    assert verified_client(owner).get(f"/rooms/{room.pk}/archive/").status_code == 405


# --- Members --------------------------------------------------------------------------------
def test_an_owner_adds_a_member_by_username() -> None:
    owner, newcomer = make_user(), make_user(username="newcomer")
    room = make_room(owner=owner)

    response = verified_client(owner).post(
        f"/rooms/{room.pk}/members/add/", {"username": "newcomer", "role": "member"}, follow=True
    )

    membership = member_of(room, newcomer)
    assert membership is not None
    assert membership.role == Membership.Role.MEMBER
    assert "newcomer was added as member." in flash(response)
    assert audited(AuditAction.ROOM_MEMBER_ADDED, room) == 1


def test_a_plain_member_cannot_add_anyone() -> None:
    owner, member, outsider = make_user(), make_user(), make_user(username="outsider")
    room = make_room(owner=owner, members=(member,))
    added_before = audited(AuditAction.ROOM_MEMBER_ADDED, room)

    known = verified_client(member).post(
        f"/rooms/{room.pk}/members/add/", {"username": "outsider", "role": "member"}
    )
    unknown = verified_client(member).post(
        f"/rooms/{room.pk}/members/add/", {"username": "nobody-here", "role": "member"}
    )

    # The same answer whether or not the name exists: no way to probe usernames.
    assert (known.status_code, unknown.status_code) == (403, 403)
    assert member_of(room, outsider) is None
    assert audited(AuditAction.ROOM_MEMBER_ADDED, room) == added_before


def test_a_plain_members_refused_forms_are_each_on_the_record() -> None:
    # given a plain member posting member forms, valid and invalid, to a room they cannot manage
    owner, member, outsider = make_user(), make_user(), make_user(username="outsider")
    room = make_room(owner=owner, members=(member,))
    client = verified_client(member)
    denied_before = audited(AuditAction.ROOM_ACCESS_DENIED, room)

    answers = [
        client.post(f"/rooms/{room.pk}/members/add/", {"username": "outsider", "role": "member"}),
        client.post(f"/rooms/{room.pk}/members/add/", {"username": "nobody-here", "role": "x"}),
        client.post(f"/rooms/{room.pk}/settings/", {"name": ""}),
    ]

    # then each is refused, and each refusal is recorded once, as the member's
    assert [answer.status_code for answer in answers] == [403, 403, 403]
    assert audited(AuditAction.ROOM_ACCESS_DENIED, room) == denied_before + 3
    assert member_of(room, outsider) is None


def test_an_unknown_username_is_explained_to_a_manager() -> None:
    owner = make_user()
    room = make_room(owner=owner)

    response = verified_client(owner).post(
        f"/rooms/{room.pk}/members/add/", {"username": "ghost", "role": "member"}, follow=True
    )

    assert response.status_code == 200
    assert PORTAL_NOT_ADDABLE.format("ghost") in flash(response)


def test_a_moderator_removes_a_member_and_a_member_cannot() -> None:
    owner, moderator, member = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    make_room_member(owner, room, moderator, Membership.Role.MODERATOR)

    refused = verified_client(member).post(f"/rooms/{room.pk}/members/{owner.pk}/remove/")
    assert refused.status_code == 403
    assert member_of(room, owner) is not None
    assert audited(AuditAction.ROOM_MEMBER_REMOVED, room) == 0

    done = verified_client(moderator).post(
        f"/rooms/{room.pk}/members/{member.pk}/remove/", follow=True
    )
    assert member_of(room, member) is None
    assert f"{member.username} was removed." in flash(done)
    assert audited(AuditAction.ROOM_MEMBER_REMOVED, room) == 1


def test_an_owner_changes_a_role_and_a_member_cannot() -> None:
    owner, member, other = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member, other))

    refused = verified_client(member).post(
        f"/rooms/{room.pk}/members/{other.pk}/role/", {"role": "moderator"}
    )
    assert refused.status_code == 403
    assert member_of(room, other).role == Membership.Role.MEMBER  # type: ignore[union-attr]
    assert audited(AuditAction.ROOM_MEMBER_ROLE_CHANGED, room) == 0

    verified_client(owner).post(f"/rooms/{room.pk}/members/{other.pk}/role/", {"role": "moderator"})
    assert member_of(room, other).role == Membership.Role.MODERATOR  # type: ignore[union-attr]
    assert audited(AuditAction.ROOM_MEMBER_ROLE_CHANGED, room) == 1


def test_a_moderator_cannot_make_an_owner_and_is_told_why() -> None:
    owner, moderator, member = make_user(), make_user(), make_user()
    room = make_room(owner=owner, members=(member,))
    make_room_member(owner, room, moderator, Membership.Role.MODERATOR)

    response = verified_client(moderator).post(
        f"/rooms/{room.pk}/members/{member.pk}/role/", {"role": "owner"}, follow=True
    )

    assert response.status_code == 200
    assert member_of(room, member).role == Membership.Role.MEMBER  # type: ignore[union-attr]
    assert "Only an owner can make someone an owner or a moderator." in flash(response)


def test_an_unknown_role_is_explained() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    response = verified_client(owner).post(
        f"/rooms/{room.pk}/members/{member.pk}/role/", {"role": "emperor"}, follow=True
    )

    assert member_of(room, member).role == Membership.Role.MEMBER  # type: ignore[union-attr]
    assert any(m.startswith("Role:") for m in flash(response))


def test_a_member_may_leave_and_the_last_owner_may_not() -> None:
    owner, member = make_user(), make_user()
    room = make_room(owner=owner, members=(member,))

    left = verified_client(member).post(f"/rooms/{room.pk}/members/{member.pk}/remove/")
    kept = verified_client(owner).post(f"/rooms/{room.pk}/members/{owner.pk}/remove/", follow=True)

    assert left["Location"] == CHAT
    assert member_of(room, member) is None
    assert member_of(room, owner) is not None
    assert any("at least one owner" in m for m in flash(kept))


# --- Stored key data that fails its integrity check ---------------------------------------
@pytest.mark.django_db(transaction=True)
def test_a_removal_meeting_a_tampered_key_record_says_so_and_changes_nothing() -> None:
    # given a compliance public key whose MAC no longer verifies (an insider's edit; the
    # keyring tables have no triggers to bypass)
    owner, leaver = make_user(), make_user()
    room = make_room(owner=owner, members=(leaver,))
    ComplianceKeyPair.objects.update(mac=bytes(32))
    clear_key_caches()
    epochs = RoomEpoch.objects.filter(room=room).count()

    # when the owner removes a member in the portal
    response = verified_client(owner).post(
        f"/rooms/{room.pk}/members/{leaver.pk}/remove/", follow=True
    )

    # then the page says what happened, no server error, and nothing changed: the member
    # and their keys stay, no new epoch, no removal audited; the tampering is audited
    assert response.status_code == 200
    assert INTEGRITY_FAILURE_MESSAGE in flash(response)
    assert member_of(room, leaver) is not None
    assert SealedEpochKey.objects.filter(epoch__room=room, user=leaver).exists()
    assert RoomEpoch.objects.filter(room=room).count() == epochs
    assert audited(AuditAction.ROOM_MEMBER_REMOVED, room) == 0
    assert AuditEvent.objects.filter(action=AuditAction.KEY_INTEGRITY_FAILED).exists()


def test_any_portal_view_meeting_a_tampered_key_record_answers_with_a_page() -> None:
    # given a portal view that meets stored key data failing its check
    owner = make_user()
    client = verified_client(owner)

    def failing_view(request: HttpRequest) -> HttpResponse:
        raise IntegrityFailure(kind="public-key", ref="user:1")

    # when it runs behind the portal's middleware
    request = RequestFactory().get(CHAT)
    request.user = owner
    request.session = client.session
    response = IntegrityFailureMiddleware(failing_view).process_exception(
        request, IntegrityFailure(kind="public-key", ref="user:1")
    )

    # then the answer is a page that says so (503), not a server error
    assert response is not None
    assert response.status_code == 503
    assert "failed its integrity check" in response.content.decode()
