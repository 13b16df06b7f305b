"""Master-key rotation: re-wrap what the master key wraps, in batches, resumably.

State lives in the rows themselves (``kek_version``), so a crash at any point
loses nothing: every row is wrapped by either the old or the new version, both
of which the provider still holds, and the next run continues where it stopped.
Nothing else is re-encrypted: room keys, messages and files are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import Count

from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from safechat.crypto import ConfigError, rewrap
from safechat.crypto.providers import key_file_add_version
from safechat.keyring import events
from safechat.keyring.errors import RotationIncompleteError
from safechat.keyring.integrity import record_mac_key_aad
from safechat.keyring.models import ComplianceKeyPair, RecordMacKey, UserKeyPair
from safechat.keyring.provider import get_provider, settings_env
from safechat.keyring.services import compliance_private_key_aad, user_private_key_aad

ROTATION_SYSTEM = SystemActor("key-rotation")


@dataclass(frozen=True)
class RotationStatus:
    current_version: int
    users_by_version: dict[int, int]
    compliance_by_version: dict[int, int]
    record_mac_by_version: dict[int, int] = field(default_factory=dict)

    def _counts(self) -> tuple[dict[int, int], ...]:
        return (self.users_by_version, self.compliance_by_version, self.record_mac_by_version)

    @property
    def remaining(self) -> int:
        return sum(
            count
            for counts in self._counts()
            for version, count in counts.items()
            if version != self.current_version
        )

    def wrapped_by(self, version: int) -> int:
        return sum(counts.get(version, 0) for counts in self._counts())


def _by_version(model: type[UserKeyPair | ComplianceKeyPair | RecordMacKey]) -> dict[int, int]:
    rows = model.objects.values("kek_version").annotate(n=Count("pk"))
    return {row["kek_version"]: row["n"] for row in rows}


def master_key_status() -> RotationStatus:
    return RotationStatus(
        current_version=get_provider().current_version,
        users_by_version=_by_version(UserKeyPair),
        compliance_by_version=_by_version(ComplianceKeyPair),
        record_mac_by_version=_by_version(RecordMacKey),
    )


WrappedRow = TypeVar("WrappedRow", UserKeyPair, ComplianceKeyPair, RecordMacKey)


def _rewrap_rows(
    model: type[WrappedRow],
    *,
    limit: int,
    aad_of: Callable[[WrappedRow], bytes],
    field_name: str = "wrapped_private_key",
) -> int:
    """Re-wrap up to ``limit`` rows of ``model`` not under the current master-key version."""
    if limit <= 0:
        return 0
    provider = get_provider()
    rows = list(
        model.objects.select_for_update(skip_locked=True)
        .exclude(kek_version=provider.current_version)
        .order_by("pk")[:limit]
    )
    for row in rows:
        wrapped = rewrap(provider, bytes(getattr(row, field_name)), aad=aad_of(row))
        setattr(row, field_name, wrapped.to_bytes())
        row.kek_version = wrapped.version
    model.objects.bulk_update(rows, [field_name, "kek_version"])
    return len(rows)


def _rewrap_batch(batch_size: int) -> int:
    """One transaction: user keys first, then the compliance and record-MAC keys,
    ``batch_size`` in all."""
    with transaction.atomic():
        users = _rewrap_rows(
            UserKeyPair, limit=batch_size, aad_of=lambda k: user_private_key_aad(k.user_id)
        )
        compliance = _rewrap_rows(
            ComplianceKeyPair,
            limit=batch_size - users,
            aad_of=lambda k: compliance_private_key_aad(k.pk),
        )
        mac_keys = _rewrap_rows(
            RecordMacKey,
            limit=batch_size - users - compliance,
            aad_of=lambda k: record_mac_key_aad(k.pk),
            field_name="wrapped_key",
        )
    return users + compliance + mac_keys


def master_key_rotate(
    *,
    actor: AbstractBaseUser | SystemActor = ROTATION_SYSTEM,
    batch_size: int = 500,
    max_batches: int | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> RotationStatus:
    """Re-wrap every user and compliance private key (and the record-MAC key) under the
    current master-key version.

    Idempotent (a second run finds nothing to do) and resumable (stop it anywhere;
    ``max_batches`` stops it on purpose). Records ``key.master.rotation.started`` when
    it finds work and ``key.master.rotated`` when nothing is left under an old version.
    """
    status = master_key_status()
    if status.remaining == 0:
        return status
    with transaction.atomic():
        audit_record(
            actor=actor,
            action=AuditAction.KEY_MASTER_ROTATION_STARTED,
            extra={"to_version": status.current_version, "remaining": status.remaining},
        )
    batches = 0
    while max_batches is None or batches < max_batches:
        done = _rewrap_batch(batch_size)
        if done == 0:
            break
        batches += 1
        if after_batch is not None:
            after_batch(done)
    status = master_key_status()
    if status.remaining == 0:
        with transaction.atomic():
            audit_record(
                actor=actor,
                action=AuditAction.KEY_MASTER_ROTATED,
                extra={"to_version": status.current_version},
            )
    return status


def master_key_version_retire(*, actor: AbstractBaseUser | SystemActor, version: int) -> None:
    """Record that ``version`` may be removed from the key store; refused while still in use."""
    status = master_key_status()
    if version == status.current_version:
        raise RotationIncompleteError(f"version {version} is the current master key")
    still = status.wrapped_by(version)
    if still:
        raise RotationIncompleteError(
            f"{still} key(s) are still wrapped by master-key version {version}; "
            "finish the rotation first"
        )
    with transaction.atomic():
        audit_record(
            actor=actor, action=AuditAction.KEY_MASTER_VERSION_RETIRED, extra={"version": version}
        )


def master_key_version_add(*, actor: AbstractBaseUser | SystemActor) -> int:
    """Add the next master-key version to the key store and publish it; returns it.

    Local provider: a new key in ``SAFECHAT_MASTER_KEY_FILE``; PKCS#11: a new token key.
    The store is written first, then every process is told to re-read it (and any process
    that meets the new version re-reads it by itself), so a key wrapped with the new
    version is readable everywhere. Not possible with ``SAFECHAT_MASTER_KEYS``, which a
    running process cannot re-read: change it and restart every process instead.
    """
    provider = get_provider()
    env = settings_env()
    kind = env["SAFECHAT_KEY_PROVIDER"]  # normalised by settings_env
    if kind == "local" and env.get("SAFECHAT_MASTER_KEY_FILE"):
        version = key_file_add_version(env["SAFECHAT_MASTER_KEY_FILE"])
    elif kind == "pkcs11":
        from safechat.crypto.providers.pkcs11 import Pkcs11Config, pkcs11_generate_kek

        version = pkcs11_generate_kek(Pkcs11Config.from_env(env))
    else:
        raise ConfigError(
            "a new version needs the local provider with SAFECHAT_MASTER_KEY_FILE or the "
            "PKCS#11 provider; with SAFECHAT_MASTER_KEYS add the version there and restart "
            "every process"
        )
    provider.reload()
    with transaction.atomic():
        audit_record(
            actor=actor, action=AuditAction.KEY_MASTER_VERSION_ADDED, extra={"version": version}
        )
        events.master_key_changed(version=version)
    return version
