"""The compliance officer's dashboard: counts over time, plotted and tabulated, for
compliance officers only, with nothing inline that the CSP would block."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from accounts.models import User
from accounts.roles import Role
from compliance.selectors.dashboard import compliance_dashboard
from compliance.services import legal_hold_place
from compliance.services.supervision import (
    supervision_lexicon_create,
    supervision_run,
    supervision_term_add,
)
from rooms.services import message_post
from tests.accounts.factories import grant_role, make_user, sign_in_client
from tests.compliance.factories import make_officer
from tests.rooms.factories import make_room

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_rest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("compliance.services.retention._rest", lambda seconds: None)


def client_for(user: User) -> Client:
    client = Client()
    sign_in_client(client, user, verified=True)
    return client


def test_the_dashboard_counts_holds_the_queue_and_messages() -> None:
    # given an active hold, two messages of which one is flagged
    officer = make_officer()
    sender = make_user()
    room = make_room(owner=sender)
    legal_hold_place(actor=officer, matter="M-1", reason="subpoena", rooms=[room])
    lexicon = supervision_lexicon_create(actor=officer, name="Promises")
    supervision_term_add(actor=officer, lexicon=lexicon, kind="phrase", value="guarantee")
    message_post(sender=sender, room=room, text="I guarantee it")
    message_post(sender=sender, room=room, text="lunch?")
    supervision_run()

    # when the officer reads the dashboard
    dashboard = compliance_dashboard(officer=officer)

    # then the figures and the charts say so
    assert dashboard.figures["holds_active"] == 1
    assert dashboard.figures["queue_pending"] == 1
    charts = {chart.id: chart for chart in dashboard.charts}
    assert charts["messages-per-day"].series[0].values[-1] == 2
    assert charts["flags-per-lexicon"].rows == [("Promises", [1])]
    assert charts["review-queue"].rows == [("pending", [1]), ("escalated", [0]), ("closed", [0])]
    assert len(dashboard.days) == 30


def test_the_page_plots_from_a_json_block_and_tabulates_with_no_inline_script() -> None:
    # given an officer
    client = client_for(make_officer())

    # when they open the dashboard
    page = client.get("/admin/compliance/dashboard/")
    body = page.content.decode()

    # then the vendored Chart.js and the page's module are loaded from our static files
    assert page.status_code == 200
    assert "/static/vendor/chart.js/4.6.1/chart.umd.min.js" in body
    assert "/static/safechat/compliance/dashboard.js" in body
    # and the data is a JSON block, every other script has a source (the CSP holds)
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", body, re.S)
    inline = [attrs for attrs, code in scripts if code.strip() and "application/json" not in attrs]
    assert inline == []
    block = re.search(r'id="dashboard-data"[^>]*>(.*?)</script>', body, re.S)
    assert block is not None
    data = json.loads(block[1])
    assert {chart["id"] for chart in data} >= {"messages-per-day", "review-queue", "exports"}
    # and every chart has its table
    assert body.count("<summary>Numbers</summary>") == len(data)
    assert "no-store" in page["Cache-Control"]


def test_the_admin_landing_page_leads_officers_to_the_dashboard() -> None:
    # when an officer and a security administrator open the admin's index
    officer_page = client_for(make_officer()).get("/admin/")
    admin_user = User.objects.get(pk=grant_role(make_user(), Role.SECURITY_ADMIN).pk)
    admin_page = client_for(admin_user).get("/admin/")

    # then only the officer is offered the dashboard
    assert "/admin/compliance/dashboard/" in officer_page.content.decode()
    assert "/admin/compliance/dashboard/" not in admin_page.content.decode()


@pytest.mark.parametrize("role", [Role.SECURITY_ADMIN, None])
def test_no_one_else_reads_the_dashboard(role: str | None) -> None:
    # given a security administrator, or a member
    user = make_user()
    if role:
        grant_role(user, role)

    # when they open the dashboard
    page = client_for(User.objects.get(pk=user.pk)).get("/admin/compliance/dashboard/")

    # then they are refused (403, or sent to sign in to the admin)
    assert page.status_code in {302, 403}
    assert b"dashboard-data" not in page.content
