"""The action spine: one way to act (``@action``, a durable transaction) and to refuse
(``Refused``, recorded once after the rollback)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.services import InvalidLink
from audit.actions import AuditAction
from audit.models import AuditEvent
from rooms.errors import BarrierViolationError
from rooms.models import Room
from rooms.services import room_create
from safechat.actions import Refused, action, action_transaction, is_action
from tests.accounts.factories import make_user
from tests.rooms.factories import make_room_admin

# Public functions of the service packages that are not entry points, and why.
NOT_ENTRY_POINTS = {
    # reads
    "accounts.services.factors.factor_change_allowed",
    "rooms.services.epochs.current_epoch",
    "rooms.services.epochs.epoch_needs_rotation",
    "accounts.services.users.password_reset_user",
    "rooms.services.barriers.barrier_conflicts",
    "rooms.services.barriers.room_barrier_violations",
    "rooms.services._common.room_barrier_separating",
    "rooms.services.barriers.user_barrier_violations",
    "rooms.services.barriers.lifts_own_wall",
    "rooms.services.membership.acting_owners",
    "rooms.services._common.role_grant_permission",
    "rooms.services.messages.client_key_clean",
    "accounts.services.profile.display_name_clean",
    "files.services.uploads.upload_for_uploader",
    "accounts.services._common.client_ip",
    "accounts.services._common.client_user_agent",
    # a step of the action that calls it, inside its transaction (the change feed's append)
    "rooms.services._changes.room_change_append",
    # checks that raise Refused for the action that calls them
    "accounts.services._common.ensure_permission",
    "accounts.services._common.ensure_not_self",
    "accounts.services._common.actor_and_people_locked",
    "accounts.services._common.ensure_not_last_security_admin",
    "accounts.services._common.ensure_person",
    # takes a lock for the action that calls it
    "accounts.services._common.security_admins_locked",
    # counts a failure for the action that calls it (its lockout event in its own transaction)
    "accounts.services._common.failure_count",
    # part of the action that calls it (accounts.services.federation.federated_sign_in)
    "accounts.services.idp_access.idp_access_apply",
    # part of the action that calls it (files.services.scanning.file_scan)
    "rooms.services.messages.message_file_insert",
    "rooms.services.messages.message_file_withdraw",
    "rooms.services._common.archived_refused",
    "rooms.services._common.permission_refused",
    "rooms.services._common.require_not_archived",
    "rooms.services._common.require_room_permission",
    "rooms.services._common.last_owner_refused",
    "rooms.services._common.require_chat_writer",
    "rooms.services._common.require_open_membership",
    "rooms.services._common.require_open_membership_first",
    "rooms.services._common.require_role_grantable",
    "rooms.services._common.require_inviter_entitled",
    "rooms.services._common.require_owner_over",
    "rooms.services._common.require_room_permission_for",
    "rooms.services._common.require_writable",
    "rooms.services._common.room_refused",
    "rooms.services._common.unreachable_answered",
    "rooms.services.barriers.barrier_require_allowed",
    "rooms.services._common.require_unseparated",
    "files.services._common.upload_refused",
    "compliance.services._common.refused",
    "compliance.services._common.require_permission",
    "compliance.services._common.require_text",
    "compliance.services._common.require_scope",
    "compliance.services._common.require_ordered_range",
    # a step of the action that calls it, inside its transaction (the row, its scope, its event)
    "compliance.services._common.scoped_create",
    # the associated data and decryption of a supervision item's hits (for the selector)
    "compliance.services.supervision.hits_aad",
    "compliance.services.supervision.supervision_match_posted",  # inside a post's transaction
    "compliance.services.supervision.hits_open",
    # the associated data and decryption of a reviewer's sealed note (for the selector)
    "compliance.services.supervision.note_aad",
    "compliance.services.supervision.note_open",
    # where an export's archive is stored, and the key it is encrypted to
    "compliance.services.export_job.export_blob_name",
    "compliance.services.export_job.export_recipient",
    # queues a task after commit
    "files.services.uploads.scan_enqueue",
    # parts of a caller's transaction (their docstrings say so)
    "accounts.services.auth.second_factor_accepted",
    "accounts.services.factors.factor_added",
    "accounts.services.sessions.credentials_bump",
    "accounts.services.sessions.session_hold",
    "accounts.services.sessions.session_rotate",
    "accounts.services.sessions.session_start",
    "accounts.services.sessions.sessions_end_rows",
    "accounts.services.sessions.user_sessions_end",
    "rooms.services.barriers.user_groups_lock",
    "rooms.services.barriers.barrier_admin_locked",
    "rooms.services.membership.rooms_owned_only_by",
    "rooms.services.membership.rooms_left_without_owner",
    "rooms.services.barriers.user_rooms_lock",
    "rooms.services.barriers.people_rooms_lock",
    "rooms.services.epochs.epoch_shred_locked",
    "rooms.services.epochs.file_key_wrap",
    "rooms.services.epochs.message_encrypt",
    "rooms.services.epochs.room_epoch_start",  # also the scheduled rotation's one step
    "rooms.services.epochs.room_keys_grant",
    "rooms.services.epochs.room_keys_revoke",
    "rooms.services.epochs.room_rekey_mark",
    # a deactivation's and a reactivation's part in the rooms (asked through accounts.hooks)
    "rooms.services.membership.memberships_suspend",
    "rooms.services.membership.memberships_resume",
    # a display name change's part in the rooms (asked through accounts.hooks)
    "rooms.services.membership.member_renamed_publish",
}


def _service_modules() -> list[ModuleType]:
    modules = []
    for package_name in (
        "compliance.services",
        "files.services",
        "rooms.services",
        "accounts.services",
    ):
        package = importlib.import_module(package_name)
        modules.append(package)
        for info in pkgutil.iter_modules(package.__path__):
            modules.append(importlib.import_module(f"{package_name}.{info.name}"))
    return modules


def _public_service_functions() -> dict[str, object]:
    found: dict[str, object] = {}
    for module in _service_modules():
        for name, member in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            defined_in = inspect.unwrap(member).__module__
            if defined_in == module.__name__:
                found[f"{defined_in}.{name}"] = member
    return found


def test_every_public_service_function_is_an_action_or_a_known_helper() -> None:
    functions = _public_service_functions()

    undecorated = sorted(
        name for name, f in functions.items() if not is_action(f) and name not in NOT_ENTRY_POINTS
    )
    helpers_decorated = sorted(
        n for n, f in functions.items() if is_action(f) and n in NOT_ENTRY_POINTS
    )

    assert undecorated == []
    assert helpers_decorated == []
    assert len([f for f in functions.values() if is_action(f)]) >= 40  # the census is real


def test_every_exported_entry_point_is_an_action() -> None:
    import accounts.services
    import files.services
    import rooms.services

    for package in (files.services, rooms.services, accounts.services):
        for name in package.__all__:
            member = getattr(package, name)
            if not inspect.isfunction(member):
                continue  # exceptions and constants
            qualified = f"{inspect.unwrap(member).__module__}.{name}"
            if qualified not in NOT_ENTRY_POINTS:
                assert is_action(member), qualified


def test_every_refusal_is_a_refused_and_a_permission_denied() -> None:
    assert issubclass(Refused, PermissionDenied)  # every edge answers it as today
    assert issubclass(BarrierViolationError, Refused)
    assert issubclass(InvalidLink, Refused)


# --- the mechanism, on a small action of its own -----------------------------------------


def _refusal(actor: object) -> Refused:
    return Refused(
        "not you",
        actor=actor,  # type: ignore[arg-type]
        action=AuditAction.ROOM_ACCESS_DENIED,
        reason="test",
        extra={"detail": 1},
    )


@action
def _group_create_then(*, actor: object, name: str, fail: Exception | None) -> Group:
    with action_transaction():
        group = Group.objects.create(name=name)
        if fail is not None:
            raise fail
    return group


@action
def _refuse_before_the_transaction(*, actor: object) -> None:
    raise _refusal(actor)


def _denials() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="room.access.denied").order_by("seq"))


@pytest.mark.django_db(transaction=True)
def test_a_refusal_inside_the_transaction_rolls_the_writes_back_and_is_recorded_once() -> None:
    actor = make_user()
    events_before = AuditEvent.objects.count()

    with pytest.raises(Refused) as raised:
        _group_create_then(actor=actor, name="refused desk", fail=_refusal(actor))

    assert str(raised.value) == "not you"
    assert not Group.objects.filter(name="refused desk").exists()
    [denial] = _denials()
    assert denial.actor_id == actor.pk
    assert denial.extra == {"reason": "test", "detail": 1}
    assert AuditEvent.objects.count() == events_before + 1


@pytest.mark.django_db
def test_inside_a_test_transaction_the_refusal_survives_the_actions_rollback_too() -> None:
    actor = make_user()

    with pytest.raises(Refused):
        _group_create_then(actor=actor, name="refused desk", fail=_refusal(actor))

    assert not Group.objects.filter(name="refused desk").exists()
    assert len(_denials()) == 1


@pytest.mark.django_db(transaction=True)
def test_a_refusal_before_the_transaction_is_recorded_once() -> None:
    actor = make_user()

    with pytest.raises(Refused):
        _refuse_before_the_transaction(actor=actor)

    assert len(_denials()) == 1


@pytest.mark.django_db(transaction=True)
def test_any_other_error_rolls_back_and_records_nothing() -> None:
    actor = make_user()
    events_before = AuditEvent.objects.count()

    with pytest.raises(ValidationError):
        _group_create_then(actor=actor, name="invalid desk", fail=ValidationError("no"))

    assert not Group.objects.filter(name="invalid desk").exists()
    assert AuditEvent.objects.count() == events_before


@pytest.mark.django_db(transaction=True)
def test_an_action_that_succeeds_commits() -> None:
    group = _group_create_then(actor=make_user(), name="desk", fail=None)

    assert Group.objects.filter(pk=group.pk).exists()
    assert _denials() == []


# --- durability: an action is the outermost unit of work ----------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_entry_point_inside_another_transaction_fails_and_writes_nothing() -> None:
    owner = make_room_admin()
    events_before = AuditEvent.objects.count()

    with transaction.atomic(), pytest.raises(RuntimeError, match="outermost"):
        room_create(actor=owner, name="Nested desk")

    assert not Room.objects.exists()
    assert AuditEvent.objects.count() == events_before


@pytest.mark.django_db(transaction=True)
def test_a_refusing_entry_point_inside_another_transaction_fails_before_refusing() -> None:
    actor = make_user()

    with transaction.atomic(), pytest.raises(RuntimeError):
        _refuse_before_the_transaction(actor=actor)

    assert _denials() == []


@pytest.mark.django_db(transaction=True)
def test_the_actions_transaction_is_durable() -> None:
    with transaction.atomic(), pytest.raises(RuntimeError), action_transaction():
        pass  # pragma: no cover
