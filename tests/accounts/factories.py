from __future__ import annotations

import time
from typing import Any

import factory
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.models import Device
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User, UserSession
from accounts.session_policy import SESSION_REVERIFIED_AT, session_key_hash


class UserFactory(factory.django.DjangoModelFactory):  # type: ignore[misc]
    """A user with a known password; `make_user` is the typed entry point."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@bank.example")
    password = factory.django.Password("correct horse battery staple")


def make_user(**fields: Any) -> User:
    user: User = UserFactory(**fields)
    return user


def make_totp_device(user: User, *, name: str = "phone", confirmed: bool = True) -> TOTPDevice:
    device: TOTPDevice = TOTPDevice.objects.create(user=user, name=name, confirmed=confirmed)
    return device


def sign_in_client(
    client: Client, user: User, *, verified: bool, device: Device | None = None
) -> Device | None:
    """Give ``client`` a session as our sign-in would: recorded, timed, optionally verified.

    Without ``device``, a verified session gets a new confirmed TOTP device.
    """
    client.force_login(user, backend="accounts.backends.RoleBackend")
    session = client.session
    now = time.time()
    if verified:
        device = device or make_totp_device(user)
        session[DEVICE_ID_SESSION_KEY] = device.persistent_id
        session[SESSION_REVERIFIED_AT] = now
    session.save()
    assert session.session_key is not None
    UserSession.objects.create(
        user=user,
        key_hash=session_key_hash(session.session_key),
        credential_epoch=user.credential_epoch,
        last_seen_at=timezone.now(),
        verified_at=timezone.now() if verified else None,
        device_id=device.persistent_id if verified and device else "",
    )
    return device if verified else None


def grant_role(user: User, role: str) -> User:
    """Test setup only: put ``user`` in a role group directly (services are tested apart)."""
    from django.contrib.auth.models import Group

    from accounts.roles import STAFF_ROLES, Role, roles_sync

    roles_sync()
    user.groups.add(Group.objects.get(name=role))
    if Role(role) in STAFF_ROLES:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    # Permission caches hang on the instance.
    for cache in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(cache, None)
    return user


def totp_code(device: TOTPDevice, *, offset_steps: int = 0) -> str:
    """The device's current code (or the one ``offset_steps`` away)."""
    from django_otp.oath import TOTP

    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"
