"""Roles are shown to people by their labels (``accounts.roles.ROLE_LABELS``), never by
their identifiers: the Users page, the invitation form, one's account page, the empty
chat's hint and the member list of a room. The identifiers stay the forms' values."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from accounts.roles import ROLE_LABELS, Role
from rooms.models import Membership
from tests.accounts.factories import grant_role, make_user
from tests.rooms.factories import make_room
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

IDENTIFIERS = [role.value for role in Role if role.value != role.label.lower()]


class _Text(HTMLParser):
    """The text a person reads on a page (not attribute values, not scripts' data)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._skip += tag in {"script", "style"}

    def handle_endtag(self, tag: str) -> None:
        self._skip -= tag in {"script", "style"}

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def read(response: object) -> str:
    parser = _Text()
    parser.feed(response.content.decode())  # type: ignore[attr-defined]
    return " ".join(parser.parts)


def test_every_role_has_a_label() -> None:
    assert set(ROLE_LABELS) == set(Role)
    assert [role.label for role in Role] == [
        "Member", "Room admin", "Compliance officer", "Security admin",
    ]  # fmt: skip


def test_the_users_page_names_roles_by_their_labels() -> None:
    # given a security admin and a room admin
    admin = grant_role(make_user(username="sam"), Role.SECURITY_ADMIN)
    grant_role(make_user(username="rita"), Role.ROOM_ADMIN)

    # when the security admin opens the Users page
    response = verified_client(admin).get("/accounts/admin/users/")

    # then roles read as labels: in the table, the grant and revoke choices and the
    # invitation form; the identifiers are only the values sent
    assert response.status_code == 200
    text = read(response)
    assert "Room admin" in text
    assert "Security admin" in text
    assert not [name for name in IDENTIFIERS if name in text]
    page = response.content.decode()
    assert '<option value="room_admin">Room admin</option>' in page
    assert re.search(r'<option value="security_admin"[^>]*>Security admin</option>', page)


def test_ones_account_page_names_ones_roles_by_their_labels() -> None:
    officer = grant_role(make_user(), Role.COMPLIANCE_OFFICER)

    text = read(verified_client(officer).get("/accounts/"))

    assert "Compliance officer" in text
    assert "compliance_officer" not in text


def test_the_empty_chats_hint_names_the_room_admin_role_by_its_label() -> None:
    admin = grant_role(make_user(), Role.SECURITY_ADMIN)

    text = read(verified_client(admin).get("/rooms/"))

    assert "choose “Room admin” in the invitation" in text
    assert "room_admin" not in text


def test_the_member_list_knows_every_room_roles_label_for_a_moderator() -> None:
    # given a moderator, whose role choices leave owners and moderators out
    owner, moderator = make_user(), make_user()
    room = make_room(owner=owner, members=(moderator,), role=Membership.Role.MODERATOR)

    # when they open the room
    response = verified_client(moderator).get(f"/rooms/?room={room.pk}")

    # then the page's client still names an owner "Owner" when it redraws the members
    config = json.loads(
        re.search(
            r'<script id="chat-config" type="application/json">(.*?)</script>',
            response.content.decode(),
            re.S,
        ).group(1)  # type: ignore[union-attr]
    )
    assert config["room"]["role_labels"] == dict(Membership.Role.choices)
    assert "owner" not in dict(config["room"]["role_choices"])
