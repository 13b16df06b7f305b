"""Enrolment, TOTP single use (also under parallel submission), backup codes, factor changes."""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.credentials import normalise_backup_code
from accounts.models import BackupCode, BackupCodeDevice, User, UserSession
from accounts.session_policy import SESSION_REVERIFIED_AT
from tests.accounts.conftest import PASSWORD, actions, events
from tests.accounts.factories import make_totp_device, sign_in_client, totp_code


def password_session(user: User) -> Client:
    client = Client()
    response = client.post("/accounts/sign-in/", {"username": user.username, "password": PASSWORD})
    assert response.status_code == 302
    return client


@pytest.mark.django_db
def test_first_sign_in_forces_enrolment_with_a_server_rendered_qr_code(user: User) -> None:
    # given a user without any factor, after the password
    client = password_session(user)

    # then every page leads to enrolment, which shows a QR image and the key
    assert client.get("/accounts/").headers["Location"].startswith("/accounts/enrol/")
    page = client.get("/accounts/enrol/")
    assert page.status_code == 200
    body = page.content.decode()
    assert 'src="data:image/svg+xml' in body
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    assert "<script>" not in body

    # when the first code from the app is entered
    response = client.post("/accounts/enrol/", {"name": "work phone", "code": totp_code(device)})

    # then the factor is confirmed, the session verified, and the portal opens
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed
    assert device.name == "work phone"
    assert client.get("/accounts/").status_code == 200
    assert actions()[-2:] == ["factor.added", "auth.login.succeeded"]


@pytest.mark.django_db
def test_a_wrong_enrolment_code_confirms_nothing(user: User) -> None:
    client = password_session(user)
    client.get("/accounts/enrol/")

    response = client.post("/accounts/enrol/", {"name": "phone", "code": "123456"})

    assert response.status_code == 400
    assert not TOTPDevice.objects.filter(user=user, confirmed=True).exists()
    assert client.get("/accounts/").status_code == 302
    assert not events("factor.added")
    # the failure is on the record and counts toward django-otp's throttle
    failed = events("auth.otp.failed")
    assert [e.extra["reason"] for e in failed] == ["enrolment_code"]
    assert TOTPDevice.objects.get(user=user, confirmed=False).throttling_failure_count == 1


@pytest.mark.django_db
def test_a_totp_code_is_accepted_once(user: User) -> None:
    device = make_totp_device(user)
    code = totp_code(device)
    first, second = password_session(user), password_session(user)

    accepted = first.post(
        "/accounts/second-factor/", {"device": device.persistent_id, "code": code}
    )
    replayed = second.post(
        "/accounts/second-factor/", {"device": device.persistent_id, "code": code}
    )

    assert accepted.status_code == 302
    assert replayed.status_code == 400
    assert second.get("/accounts/factors/").status_code == 302
    assert len(events("auth.login.succeeded")) == 1


@pytest.mark.django_db(transaction=True)
def test_two_parallel_submissions_of_one_code_cannot_both_succeed(user: User) -> None:
    # given two password sessions of the same user and one valid code
    device = make_totp_device(user)
    clients = [password_session(user), password_session(user)]
    code = totp_code(device)
    barrier = threading.Barrier(len(clients))
    statuses: list[int] = []

    def submit(client: Client) -> None:
        try:
            barrier.wait()
            response = client.post(
                "/accounts/second-factor/", {"device": device.persistent_id, "code": code}
            )
            statuses.append(response.status_code)
        finally:
            connections.close_all()

    # when both submit it at the same moment
    threads = [threading.Thread(target=submit, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly one is signed in
    assert sorted(statuses) == [302, 400]
    assert len(events("auth.login.succeeded")) == 1
    assert UserSession.objects.filter(user=user, verified_at__isnull=False).count() == 1


@pytest.mark.django_db
def test_one_devices_failures_do_not_throttle_another(user: User) -> None:
    # given two authenticator apps
    phone = make_totp_device(user, name="phone")
    tablet = make_totp_device(user, name="tablet")
    client = password_session(user)

    # when the phone gets a wrong code, django-otp throttles it (1 s, then doubling)
    client.post("/accounts/second-factor/", {"device": phone.persistent_id, "code": "000000"})
    phone.refresh_from_db()
    assert phone.throttling_failure_count == 1
    throttled = client.post(
        "/accounts/second-factor/", {"device": phone.persistent_id, "code": totp_code(phone)}
    )
    assert throttled.status_code == 400

    # then the tablet still works at once
    response = client.post(
        "/accounts/second-factor/", {"device": tablet.persistent_id, "code": totp_code(tablet)}
    )
    assert response.status_code == 302
    tablet.refresh_from_db()
    assert tablet.throttling_failure_count == 0


@pytest.mark.django_db
def test_backup_codes_are_shown_once_stored_hashed_and_work_once(user: User) -> None:
    # given a verified user who just confirmed it is them
    client = Client()
    sign_in_client(client, user, verified=True)

    # when they generate backup codes
    page = client.post("/accounts/factors/backup-codes/")
    assert page.status_code == 200
    codes = page.context["codes"]
    assert len(codes) == 10

    # then no code is stored in clear
    stored = set(BackupCode.objects.values_list("code_hash", flat=True))
    assert all(normalise_backup_code(c) not in " ".join(stored) for c in codes)
    assert events("factor.backup_codes.generated")[0].extra == {"count": 10}

    # and a code signs in once, and only once
    backup = BackupCodeDevice.objects.get(user=user)
    first, second = password_session(user), password_session(user)
    ok = first.post("/accounts/second-factor/", {"device": backup.persistent_id, "code": codes[0]})
    again = second.post(
        "/accounts/second-factor/", {"device": backup.persistent_id, "code": codes[0]}
    )
    assert ok.status_code == 302
    assert again.status_code == 400


@pytest.mark.django_db
def test_factor_changes_need_a_recent_reverification(user: User) -> None:
    # given a verified session whose last second factor is ten minutes old
    client = Client()
    phone = sign_in_client(client, user, verified=True)
    assert isinstance(phone, TOTPDevice)
    session = client.session
    session[SESSION_REVERIFIED_AT] = time.time() - 600
    session.save()

    # when they try to rename a factor or make backup codes
    rename = client.post(f"/accounts/factors/{phone.persistent_id}/rename/", {"name": "x"})
    codes = client.post("/accounts/factors/backup-codes/")

    # then both send them to re-verify, and nothing changed
    assert rename.headers["Location"] == "/accounts/reverify/"
    assert codes.headers["Location"] == "/accounts/reverify/"
    phone.refresh_from_db()
    assert phone.name == "phone"
    assert not events("factor.renamed")
    assert not BackupCode.objects.exists()

    # when they re-verify, the rename goes through
    client.post("/accounts/reverify/", {"device": phone.persistent_id, "code": totp_code(phone)})
    client.post(f"/accounts/factors/{phone.persistent_id}/rename/", {"name": "work phone"})
    phone.refresh_from_db()
    assert phone.name == "work phone"
    assert events("factor.renamed")[0].extra["to"] == "work phone"


@pytest.mark.django_db
def test_the_last_factor_is_removed_only_after_adding_another(user: User) -> None:
    client = Client()
    phone = sign_in_client(client, user, verified=True)
    assert phone is not None
    tablet = make_totp_device(user, name="tablet")

    # the session's own factor cannot go; re-verify with the tablet first
    refused = client.post(f"/accounts/factors/{phone.persistent_id}/remove/")
    assert refused.status_code == 303
    client.post("/accounts/reverify/", {"device": tablet.persistent_id, "code": totp_code(tablet)})

    # when the phone is removed, the tablet is the last one and stays
    assert client.post(f"/accounts/factors/{phone.persistent_id}/remove/").status_code == 302
    client.post(
        "/accounts/reverify/",
        {"device": tablet.persistent_id, "code": totp_code(tablet, offset_steps=1)},
    )
    last = client.post(f"/accounts/factors/{tablet.persistent_id}/remove/")

    assert last.status_code == 303
    assert list(TOTPDevice.objects.filter(user=user).values_list("name", flat=True)) == ["tablet"]
    assert len(events("factor.removed")) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    "persistent_id",
    ["accounts.user/{user}", "auth.group/1", "audit.auditevent/1", "nope.nothing/1", "x/y/z"],
)
@pytest.mark.parametrize("verb", ["remove", "rename"])
def test_a_factor_path_naming_no_device_model_is_a_404(
    user: User, persistent_id: str, verb: str
) -> None:
    client = Client()
    phone = sign_in_client(client, user, verified=True)
    assert phone is not None

    response = client.post(
        f"/accounts/factors/{persistent_id.format(user=user.pk)}/{verb}/", {"name": "x"}
    )

    assert response.status_code == 404
    assert User.objects.filter(pk=user.pk, is_active=True).exists()
    assert TOTPDevice.objects.filter(pk=phone.pk, name="phone").exists()
    assert not events("factor.removed")
    assert not events("factor.renamed")


@pytest.mark.django_db
def test_a_second_factor_code_for_a_non_device_id_is_refused_and_audited(user: User) -> None:
    client = Client()
    sign_in_client(client, user, verified=False)
    make_totp_device(user)

    response = client.post(
        "/accounts/second-factor/", {"device": f"accounts.user/{user.pk}", "code": "123456"}
    )

    assert response.status_code == 400
    assert [e.extra["reason"] for e in events("auth.otp.failed")] == ["malformed"]


@pytest.mark.django_db
def test_the_factors_page_names_each_kind_as_people_read_it(user: User) -> None:
    # given a person with an authenticator app
    client = Client()
    sign_in_client(client, user, verified=True)

    # when they open their factors
    page = client.get("/accounts/factors/").content.decode()

    # then the kind is "Authenticator app", never the stored "totp"
    assert "<td>Authenticator app (one-time codes)</td>" in page
    assert "<td>totp</td>" not in page
