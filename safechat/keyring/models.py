"""Key material as the database holds it: public keys, and private keys only wrapped.

Nothing here is readable without the master key, which lives outside the
database (``safechat.keyring.provider``). Nothing here is trusted because the
database says so either: public keys and sealed copies carry a MAC (``mac``) under
the record-MAC key, which only the master key unwraps (``safechat.keyring.integrity``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class UserKeyPair(models.Model):
    """A user's HPKE (ML-KEM-768 + X25519) key pair; the private half wrapped by the master key."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="keypair"
    )
    public_key = models.BinaryField()
    wrapped_private_key = models.BinaryField()
    kek_version = models.PositiveIntegerField(db_index=True)
    # HMAC under the record-MAC key over (user id, public key).
    mac = models.BinaryField(default=b"")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"key pair of user {self.user_id}"


class ComplianceKeyPair(models.Model):
    """The organisation's compliance key pair; every use of its private half is audited."""

    public_key = models.BinaryField()
    wrapped_private_key = models.BinaryField()
    kek_version = models.PositiveIntegerField(db_index=True)
    # HMAC under the record-MAC key over (key id, public key).
    mac = models.BinaryField(default=b"")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["active"],
                condition=models.Q(active=True),
                name="keyring_one_active_compliance_key",
            )
        ]

    def __str__(self) -> str:
        return f"compliance key {self.pk}"


class RoomEpoch(models.Model):
    """One numbered key period of a room. The key itself exists only sealed."""

    class Reason(models.TextChoices):
        CREATED = "created", "Room created"
        MEMBER_REMOVED = "member-removed", "Member removed"
        CRYPTOPERIOD = "cryptoperiod", "Cryptoperiod ended"
        ON_DEMAND = "on-demand", "On demand"
        SHREDDED = "shredded", "Previous epoch shredded"
        MEMBER_JOINED = "member-joined", "Member joined a room that hides history"
        MEMBER_DEACTIVATED = "member-deactivated", "Member deactivated"

    room = models.ForeignKey("rooms.Room", on_delete=models.CASCADE, related_name="epochs")
    number = models.PositiveIntegerField()
    reason = models.CharField(max_length=20, choices=Reason.choices)
    message_count = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    shredded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "number"], name="keyring_epoch_unique"),
        ]
        ordering = ["room_id", "number"]

    def __str__(self) -> str:
        return f"room {self.room_id} epoch {self.number}"


class SealedEpochKey(models.Model):
    """An epoch key sealed with HPKE to one member, or to the compliance key (``user`` null)."""

    epoch = models.ForeignKey(RoomEpoch, on_delete=models.CASCADE, related_name="sealed_keys")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="sealed_epoch_keys",
    )
    compliance_key = models.ForeignKey(
        ComplianceKeyPair, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    sealed = models.BinaryField()
    # 1: legacy associated data (room, epoch); 2: also recipient and key fingerprint.
    aad_format = models.PositiveSmallIntegerField(default=2)
    # HMAC under the record-MAC key over room, epoch, recipient, its key fingerprint,
    # aad_format and the sealed bytes: a copy sealed by anyone else is refused.
    mac = models.BinaryField(default=b"")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["epoch", "user"],
                condition=models.Q(user__isnull=False),
                name="keyring_sealed_member_unique",
            ),
            models.UniqueConstraint(
                fields=["epoch", "compliance_key"],
                condition=models.Q(compliance_key__isnull=False),
                name="keyring_sealed_compliance_unique",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(user__isnull=False, compliance_key__isnull=True)
                    | models.Q(user__isnull=True, compliance_key__isnull=False)
                ),
                name="keyring_sealed_one_recipient",
            ),
        ]

    def __str__(self) -> str:
        recipient = f"user {self.user_id}" if self.user_id else "compliance"
        return f"epoch {self.epoch_id} sealed to {recipient}"


class RecordMacKey(models.Model):
    """The key that MACs key records (one row, id 1), wrapped by the master key."""

    wrapped_key = models.BinaryField()
    kek_version = models.PositiveIntegerField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"record MAC key {self.pk}"
