"""GET /api/v1/audit/export: compliance officers only; every export recorded, refusals not."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from accounts.models import ApiToken
from accounts.services.tokens import api_token_create
from audit import signing
from audit.actions import AuditAction
from audit.exportfile import export_verify
from audit.models import AuditEvent
from tests.accounts.factories import make_user, sign_in_client
from tests.audit.factories import (
    actions_since,
    checkpoint_count,
    log_state,
    make_events,
    make_officer,
)
from tests.files.asgi_client import call
from tests.support.clients import verified_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit/export"


def test_an_officer_streams_a_verifiable_export(tmp_path: Path, settings: Settings) -> None:
    # given events and a compliance officer with a verified session, behind the proxy
    settings.SAFECHAT_TRUST_REQUEST_ID_HEADER = True
    make_events(4)
    officer = make_officer(username="officer")
    client = verified_client(officer)

    # when the officer exports
    response = client.get(URL, {"format": "jsonl"}, HTTP_X_REQUEST_ID="req-export-000001")

    # then the response streams a JSONL export that verifies offline
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"].startswith('attachment; filename="safechat-audit-1-4')
    assert response["Cache-Control"] == "no-store"
    path = tmp_path / "export.jsonl"
    path.write_bytes(response.getvalue())
    result = export_verify(path, [signing.public_key()])
    assert result.ok, result.message

    # and the export is on record, by the officer, with the request id
    exported = AuditEvent.objects.get(action=AuditAction.AUDIT_EXPORTED)
    assert (exported.actor_id, exported.actor_username) == (officer.pk, "officer")
    assert exported.request_id == "req-export-000001"
    assert exported.extra["via"] == "api"


def test_csv_is_offered_too() -> None:
    make_events(2)
    response = verified_client(make_officer()).get(URL, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    body = response.getvalue().decode()
    assert body.splitlines()[0].startswith("action,actor_id,actor_type")
    assert len(body.splitlines()) == 3


def test_anonymous_requests_are_refused_and_write_nothing() -> None:
    # given events
    make_events(2)
    before = (log_state(), checkpoint_count())

    # when an anonymous client asks
    response = Client().get(URL)

    # then it is refused and nothing was recorded or signed
    assert response.status_code in {401, 403}
    assert (log_state(), checkpoint_count()) == before


def test_a_user_without_the_permission_is_refused_and_only_the_refusal_is_written() -> None:
    make_events(2)
    client = verified_client(make_user(is_staff=True))
    before = (log_state(), checkpoint_count())

    response = client.get(URL)

    assert response.status_code == 403
    assert checkpoint_count() == before[1]
    assert actions_since(before[0]) == ["access.refused"]


def test_an_officer_without_a_verified_second_factor_is_refused() -> None:
    make_events(2)
    client = Client()
    sign_in_client(client, make_officer(), verified=False)
    before = (log_state(), checkpoint_count())

    response = client.get(URL)

    # refused (the second factor is missing), nothing exported or signed
    assert response.status_code in {401, 403}
    assert checkpoint_count() == before[1]
    assert set(actions_since(before[0])) <= {"access.refused"}


def test_a_deactivated_officer_is_refused() -> None:
    officer = make_officer()
    client = verified_client(officer)
    officer.is_active = False
    officer.save()
    before = log_state()
    assert client.get(URL).status_code in {401, 403}
    assert log_state() == before


@pytest.mark.parametrize(
    "params",
    [
        {"since": "yesterday"},
        {"until": "2025-13-01"},
        {"since": "2025-01-01T25:00:00"},
        {"format": "xml"},
        {"format": "JSONL"},
        {"since": "2025-02-01", "until": "2025-01-01"},
        {"since": "2025-01-01", "until": "2025-01-01"},
        # Sent empty: a mistake, not "no bound" (found by the API's contract run, which
        # got the whole log for ``?until=``).
        {"until": ""},
        {"since": ""},
        {"format": ""},
        # Sent twice: which one counts is a guess (the last, silently, before).
        {"format": ["jsonl", "csv"]},
        {"since": ["2025-01-01", "2024-01-01"]},
    ],
    ids=[
        "since-word",
        "until-month",
        "since-hour",
        "format-xml",
        "format-upper",
        "reversed",
        "empty",
        "until-blank",
        "since-blank",
        "format-blank",
        "format-twice",
        "since-twice",
    ],
)
def test_malformed_parameters_get_a_400_json_error_and_write_nothing(
    params: dict[str, str],
) -> None:
    # given an officer
    client = verified_client(make_officer())
    make_events(1)
    before = (log_state(), checkpoint_count())

    # when the parameters are malformed
    response = client.get(URL, params)

    # then a clear problem 400 naming the parameter, never a 500, and nothing written
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid"
    assert {e.get("parameter") for e in body["errors"]} & {"since", "until", "format"}
    assert all(e["code"] and e["detail"] for e in body["errors"])
    assert (log_state(), checkpoint_count()) == before


def test_only_get_is_allowed() -> None:
    client = verified_client(make_officer())
    before = log_state()
    assert client.post(URL, {}).status_code in {403, 405}
    assert client.delete(URL).status_code in {403, 405}
    assert log_state() == before


# --- the read-only audit scope -------------------------------------------------------


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_an_audit_token_exports_and_reaches_nothing_else() -> None:
    # given an officer's audit-scope token
    from accounts.services import api_token_create

    make_events(2)
    officer = make_officer(username="officer")
    _token, secret = api_token_create(actor=officer, name="siem", scope="audit")
    client = Client()
    before = log_state()

    # when it exports, then tries the chat's reads, a write and token management
    exported = client.get(URL, headers=_bearer(secret))
    refused = {
        "rooms": client.get("/api/v1/rooms/", headers=_bearer(secret)),
        "changes": client.get("/api/v1/changes/", headers=_bearer(secret)),
        "people": client.get("/api/v1/people/", headers=_bearer(secret)),
        "tokens": client.get("/api/v1/accounts/tokens/", headers=_bearer(secret)),
        "mint": client.post(
            "/api/v1/accounts/tokens/",
            {"name": "wider", "scope": "read"},
            headers=_bearer(secret),
            content_type="application/json",
        ),
        "create room": client.post(
            "/api/v1/rooms/create/",
            {"name": "Nope"},
            headers=_bearer(secret),
            content_type="application/json",
        ),
    }

    # then the export streams, and everything else is refused by scope, writing nothing
    assert exported.status_code == 200
    assert AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).count() == 1
    for name, answer in refused.items():
        assert answer.status_code == 403, name
        assert answer.json()["code"] == "permission_denied", name
    from accounts.models import ApiToken
    from rooms.models import Room

    assert ApiToken.objects.count() == 1
    assert not Room.objects.exists()
    written = set(AuditEvent.objects.filter(seq__gt=before[1]).values_list("action", flat=True))
    # the export (with the checkpoint it signs) and the refused uses: no other success
    assert written <= {AuditAction.AUDIT_EXPORTED, "audit.checkpoint.written", "access.refused"}
    assert AuditEvent.objects.filter(seq__gt=before[1], action="access.refused").count() == len(
        refused
    )
    assert AuditAction.AUDIT_EXPORTED in written


def test_the_audit_scope_does_not_stand_in_for_the_permission() -> None:
    from accounts.services import api_token_create

    user = make_user()
    _token, secret = api_token_create(actor=user, name="siem", scope="audit")

    response = Client().get(URL, headers=_bearer(secret))

    assert response.status_code == 403
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()


def test_read_and_write_tokens_do_not_reach_the_export_and_admin_does() -> None:
    from accounts.services import api_token_create

    make_events(1)
    officer = make_officer()
    answers = {
        scope: Client().get(
            URL, headers=_bearer(api_token_create(actor=officer, name=scope, scope=scope)[1])
        )
        for scope in ("read", "write", "admin")
    }

    assert answers["read"].status_code == 403
    assert answers["write"].status_code == 403
    assert answers["admin"].status_code == 200


def test_an_admin_token_mints_an_audit_token_and_nothing_mints_one_wider() -> None:
    from accounts.models import ApiToken
    from accounts.services import api_token_create

    officer = make_officer()
    _admin, admin = api_token_create(actor=officer, name="admin", scope="admin")
    client = Client()

    child = client.post(
        "/api/v1/accounts/tokens/",
        {"name": "siem", "scope": "audit"},
        headers=_bearer(admin),
        content_type="application/json",
    )

    assert child.status_code == 201
    audit_secret = child.json()["token"]
    assert ApiToken.objects.get(name="siem").scope == "audit"
    # an audit token mints nothing, not even another audit token
    again = client.post(
        "/api/v1/accounts/tokens/",
        {"name": "siem2", "scope": "audit"},
        headers=_bearer(audit_secret),
        content_type="application/json",
    )
    assert again.status_code == 403
    assert not ApiToken.objects.filter(name="siem2").exists()


def test_head_on_the_export_is_a_405_that_builds_and_records_nothing() -> None:
    # given events and a compliance officer with a verified session
    make_events(3)
    client = verified_client(make_officer(username="officer"))
    before = log_state()

    # when the officer asks for the export's headers only
    response = client.head(URL, {"format": "csv"})

    # then HEAD is refused naming the methods the export takes, and nothing was
    # built or recorded: no audit.exported, the log as it was
    assert response.status_code == 405
    assert response["Allow"] == "GET, OPTIONS"
    assert response["Content-Type"] == "application/problem+json"
    assert not response.streaming
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()
    assert log_state() == before


def test_head_on_the_export_with_an_admin_token_builds_nothing_either() -> None:
    from accounts.services import api_token_create

    # given an officer's admin token (admin covers the audit scope)
    make_events(2)
    officer = make_officer(username="officer")
    _, secret = api_token_create(actor=officer, name="ci", scope="admin")
    before = log_state()

    response = Client().head(URL, headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 405
    assert response["Allow"] == "GET, OPTIONS"
    assert not AuditEvent.objects.filter(action=AuditAction.AUDIT_EXPORTED).exists()
    assert log_state() == before


def test_an_export_parameter_it_does_not_take_is_refused_and_nothing_recorded() -> None:
    # given an officer who misspells format
    make_events(2)
    client = verified_client(make_officer(username="officer"))
    before = log_state()

    response = client.get(URL, {"formt": "csv"})

    # then 400 naming it, and no export was built or recorded
    assert response.status_code == 400
    body = response.json()
    assert [(e["parameter"], e["code"]) for e in body["errors"]] == [("formt", "unknown")]
    assert log_state() == before


@pytest.mark.django_db(transaction=True)
def test_through_the_asgi_server_the_export_streams_without_a_buffering_warning() -> None:
    # given events and a compliance officer's audit-scope token
    make_events(3)
    officer = make_officer()
    _row, secret = api_token_create(actor=officer, name="audit", scope=ApiToken.Scope.AUDIT)
    until = timezone.now().isoformat()
    query = urlencode({"format": "jsonl", "until": until})

    # when the export is read through the ASGI application
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        answer = call("GET", f"{URL}?{query}", headers={"Authorization": f"Bearer {secret}"})

    # then Django never had to buffer a synchronous iterator, and the body is the export
    assert answer.status == 200
    assert not [w for w in caught if "synchronous iterators" in str(w.message)]
    assert answer.headers["content-type"] == "application/x-ndjson"
    via_wsgi = Client().get(f"{URL}?{query}", HTTP_AUTHORIZATION=f"Bearer {secret}").getvalue()
    # (the same bytes, but for the moment of export in the header, and the signed
    # manifest over it)
    asgi_lines, wsgi_lines = answer.body.splitlines(), via_wsgi.splitlines()
    assert len(asgi_lines) == len(wsgi_lines) >= 5
    assert asgi_lines[1:-1] == wsgi_lines[1:-1]
    assert json.loads(asgi_lines[-1])["type"] == "manifest"
    headers = [json.loads(lines[0]) for lines in (asgi_lines, wsgi_lines)]
    for header in headers:
        header.pop("exported_at")
    assert headers[0] == headers[1]
