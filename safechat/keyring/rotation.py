"""Master-key rotation: re-wrap what the master key wraps, in batches, resumably.

State lives in the rows themselves (``kek_version``), so a crash at any point
loses nothing: every row is wrapped by either the old or the new version, both
of which the provider still holds, and the next run continues where it stopped.
Nothing else is re-encrypted: room keys, messages and files are untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.db import transaction
from django.db.models import Count

from accounts.models import User
from audit.actions import AuditAction
from audit.actors import SystemActor
from audit.services import audit_record
from safechat.crypto import rewrap
from safechat.keyring.errors import RotationIncompleteError
from safechat.keyring.models import ComplianceKeyPair, UserKeyPair
from safechat.keyring.provider import get_provider
from safechat.keyring.services import compliance_private_key_aad, user_private_key_aad

ROTATION_SYSTEM = SystemActor("key-rotation")


@dataclass(frozen=True)
class RotationStatus:
    current_version: int
    users_by_version: dict[int, int]
    compliance_by_version: dict[int, int]

    @property
    def remaining(self) -> int:
        return sum(
            count
            for counts in (self.users_by_version, self.compliance_by_version)
            for version, count in counts.items()
            if version != self.current_version
        )

    def wrapped_by(self, version: int) -> int:
        return self.users_by_version.get(version, 0) + self.compliance_by_version.get(version, 0)


def master_key_status() -> RotationStatus:
    users = UserKeyPair.objects.values("kek_version").annotate(n=Count("pk"))
    compliance = ComplianceKeyPair.objects.values("kek_version").annotate(n=Count("pk"))
    return RotationStatus(
        current_version=get_provider().current_version,
        users_by_version={row["kek_version"]: row["n"] for row in users},
        compliance_by_version={row["kek_version"]: row["n"] for row in compliance},
    )


WrappedRow = TypeVar("WrappedRow", UserKeyPair, ComplianceKeyPair)


def _rewrap_rows(
    model: type[WrappedRow], *, limit: int, aad_of: Callable[[WrappedRow], bytes]
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
        wrapped = rewrap(provider, bytes(row.wrapped_private_key), aad=aad_of(row))
        row.wrapped_private_key = wrapped.to_bytes()
        row.kek_version = wrapped.version
    model.objects.bulk_update(rows, ["wrapped_private_key", "kek_version"])
    return len(rows)


def _rewrap_batch(batch_size: int) -> int:
    """One transaction: user keys first, then the compliance key, ``batch_size`` in all."""
    with transaction.atomic():
        users = _rewrap_rows(
            UserKeyPair, limit=batch_size, aad_of=lambda k: user_private_key_aad(k.user_id)
        )
        compliance = _rewrap_rows(
            ComplianceKeyPair,
            limit=batch_size - users,
            aad_of=lambda k: compliance_private_key_aad(k.pk),
        )
    return users + compliance


def master_key_rotate(
    *,
    actor: User | SystemActor = ROTATION_SYSTEM,
    batch_size: int = 500,
    max_batches: int | None = None,
    after_batch: Callable[[int], None] | None = None,
) -> RotationStatus:
    """Re-wrap every user and compliance private key under the current master-key version.

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


def master_key_version_retire(*, actor: User | SystemActor, version: int) -> None:
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
