"""Management commands that would change passwords, factors or lockouts: the ones of
django.contrib.auth, django-otp and django-axes are replaced by SafeChat's, which refuse
(audited, nothing changed) or act through an audited service under the command channel."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command, get_commands, load_command_class
from django.core.management.base import CommandError
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken

from accounts.management.commands._operator import LockoutLiftCommand, RefusedCommand
from accounts.models import User
from audit.actions import AuditAction
from audit.models import AuditEvent
from tests.accounts.factories import make_user

pytestmark = pytest.mark.django_db

REFUSED = ["changepassword", "createsuperuser", "addstatictoken", "axes_reset_logs",
           "axes_reset_failure_logs"]  # fmt: skip
LIFTING = ["axes_reset", "axes_reset_ip", "axes_reset_username", "axes_reset_ip_username"]


def attempt(*, username: str, ip: str, failures: int = 10) -> AccessAttempt:
    row: AccessAttempt = AccessAttempt.objects.create(
        username=username, ip_address=ip, user_agent="agent", failures_since_start=failures,
        get_data="", post_data="", http_accept="", path_info="/", attempt_time=timezone.now(),
    )  # fmt: skip
    return row


@pytest.mark.parametrize("name", REFUSED + LIFTING)
def test_each_name_runs_safechats_command_whichever_app_also_has_one(name: str) -> None:
    # given the installed apps (django.contrib.auth, django-otp, django-axes have these too)
    # when Django resolves the command's name, as manage.py and call_command do
    command = load_command_class(get_commands()[name], name)

    # then it is SafeChat's
    assert get_commands()[name] == "accounts"
    assert isinstance(command, RefusedCommand | LockoutLiftCommand)


def test_changepassword_is_refused_audited_and_changes_nothing() -> None:
    # given a person with a password
    alice = make_user(username="alice")
    before = User.objects.get(pk=alice.pk).password

    # when an operator runs changepassword for them
    with pytest.raises(CommandError, match="reset"):
        call_command("changepassword", "alice")

    # then the password is as it was, and the refusal is on the record, from a command
    assert User.objects.get(pk=alice.pk).password == before
    refusal = AuditEvent.objects.get(action=AuditAction.ACCOUNT_ADMIN_REFUSED)
    assert refusal.channel == "command"
    assert refusal.extra == {"reason": "command", "operation": "command.changepassword"}
    assert refusal.actor_username.startswith("system:cli.")
    assert not AuditEvent.objects.filter(action=AuditAction.AUTH_PASSWORD_CHANGED).exists()


def test_addstatictoken_is_refused_audited_and_adds_no_factor() -> None:
    # given a person without static codes
    make_user(username="alice")

    # when an operator adds a static code to their account
    with pytest.raises(CommandError, match="backup codes"):
        call_command("addstatictoken", "alice", "-t", "123456")

    # then no device or code exists, and the refusal is on the record
    assert not StaticDevice.objects.exists()
    assert not StaticToken.objects.exists()
    refusal = AuditEvent.objects.get(action=AuditAction.ACCOUNT_ADMIN_REFUSED)
    assert (refusal.channel, refusal.extra["operation"]) == ("command", "command.addstatictoken")


def test_createsuperuser_is_refused_audited_and_creates_nothing() -> None:
    # given the people there are
    before = User.objects.count()

    # when an operator runs createsuperuser
    with pytest.raises(CommandError, match="bootstrap_admin"):
        call_command(
            "createsuperuser", interactive=False, username="root", email="root@bank.example"
        )

    # then nobody is created, and the refusal is on the record
    assert User.objects.count() == before
    refusal = AuditEvent.objects.get(action=AuditAction.ACCOUNT_ADMIN_REFUSED)
    assert (refusal.channel, refusal.extra["operation"]) == ("command", "command.createsuperuser")


@pytest.mark.parametrize("name", ["axes_reset_logs", "axes_reset_failure_logs"])
def test_purging_axes_logs_is_refused_and_audited(name: str) -> None:
    # given a lockout on record
    attempt(username="alice", ip="198.51.100.1")

    # when an operator purges django-axes' logs
    with pytest.raises(CommandError, match="audit log"):
        call_command(name)

    # then the counts stay, and the refusal is on the record
    assert AccessAttempt.objects.count() == 1
    refusal = AuditEvent.objects.get(action=AuditAction.ACCOUNT_ADMIN_REFUSED)
    assert (refusal.channel, refusal.extra["operation"]) == ("command", f"command.{name}")


@pytest.mark.parametrize(
    ("name", "args", "left", "recorded"),
    [
        ("axes_reset", [], set(), [{"everything": True, "username": None, "ip_address": None}]),
        (
            "axes_reset_username",
            ["alice"],
            {("bob", "198.51.100.2")},
            [{"everything": False, "username": "alice", "ip_address": None}],
        ),
        (
            "axes_reset_ip",
            ["198.51.100.1", "198.51.100.2"],
            set(),
            [
                {"everything": False, "username": None, "ip_address": "198.51.100.1"},
                {"everything": False, "username": None, "ip_address": "198.51.100.2"},
            ],
        ),
        (
            "axes_reset_ip_username",
            ["198.51.100.2", "bob"],
            {("alice", "198.51.100.1")},
            [{"everything": False, "username": "bob", "ip_address": "198.51.100.2"}],
        ),
    ],
)
def test_axes_resets_lift_lockouts_through_the_audited_service(
    name: str, args: list[str], left: set[tuple[str, str]], recorded: list[dict[str, object]]
) -> None:
    # given two lockouts
    attempt(username="alice", ip="198.51.100.1")
    attempt(username="bob", ip="198.51.100.2")

    # when an operator runs the reset command
    call_command(name, *args)

    # then only what was named is lifted, each lift on the record under the command channel
    assert set(AccessAttempt.objects.values_list("username", "ip_address")) == left
    lifted = list(AuditEvent.objects.filter(action=AuditAction.AUTH_LOCKOUT_LIFTED).order_by("seq"))
    assert [{k: e.extra[k] for k in ("everything", "username", "ip_address")} for e in lifted] == (
        recorded
    )
    assert {(e.channel, e.extra["by"], e.extra["command"]) for e in lifted} == {
        ("command", "operator", name)
    }
    assert all(e.actor_username.startswith("system:cli.") for e in lifted)
