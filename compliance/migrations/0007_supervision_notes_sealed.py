"""Seal the reviewers' notes of the supervision queue (issue 20: no content at rest).

An escalation's note and a closing reason often quote the message, so they are sealed
under the message's epoch key like the item's hits (``compliance.services.supervision
.note_aad``). This migration adds the sealed columns and seals every note stored as text
before it, opening each epoch's key through the compliance key (one audited
``key.compliance.used`` read per item, as ``system:migration``); 0008 then drops the text
columns. A no-op where no item has a note (a new database).

A note whose epoch retention already shredded has no key to be sealed under: it is
sealed under a fresh key dropped at once (unreadable, as if it had been sealed before
the shred), so its text is gone and the decision stays. An epoch that is not shredded
but whose key cannot be opened (no compliance copy, a failed integrity check) stops the
migration, naming the item, rather than drop a record that could still be sealed.
"""

from django.db import migrations, models
from django.db.models import Q

FIELDS = ("escalation_note", "close_reason")


def seal_notes(apps, schema_editor):
    items = apps.get_model("compliance", "SupervisionItem")
    epochs = apps.get_model("keyring", "RoomEpoch")
    noted = items.objects.filter(~Q(escalation_note="") | ~Q(close_reason="")).order_by("pk")
    if not noted.exists():
        return
    from audit.actions import AuditAction
    from audit.actors import AuditTarget, SystemActor
    from compliance.services.supervision import note_aad
    from safechat.crypto import KeyPurpose, SymmetricKey, encrypt
    from safechat.keyring.errors import IntegrityFailure
    from safechat.keyring.services import compliance_epoch_keys

    actor = SystemActor("migration")
    for item in noted.iterator():
        pair = (item.room_id, item.epoch)
        shredded = epochs.objects.filter(
            room_id=item.room_id, number=item.epoch, shredded_at__isnull=False
        ).exists()
        key = None
        if not shredded:
            key = compliance_epoch_keys(
                actor=actor,
                epochs=[pair],
                action=AuditAction.KEY_COMPLIANCE_USED,
                target=AuditTarget("compliance.supervisionitem", str(item.pk)),
                extra={"reason": "sealing a supervision note stored as text", "item": item.pk},
            ).get(pair)
            if key is None or isinstance(key, IntegrityFailure):
                raise RuntimeError(
                    f"supervision item {item.pk}: the key of room {pair[0]} epoch {pair[1]} "
                    "cannot be opened through the compliance key, so its note cannot be "
                    "sealed; restore the compliance key pair and migrate again"
                )
        else:
            key = SymmetricKey.generate(KeyPurpose.ROOM_EPOCH)
        sealed = {}
        for field in FIELDS:
            text = getattr(item, field)
            if text:
                sealed[f"{field}_sealed"] = encrypt(
                    key, text.encode("utf-8"), aad=note_aad(item=item, field=field)
                )
        items.objects.filter(pk=item.pk).update(
            **sealed, escalation_note="", close_reason=""
        )


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0006_supervision_item_at_post'),
        # The keys are opened through the compliance key, each read audited.
        ('keyring', '0006_member_deactivated'),
        ('audit', '0006_event_channel_token'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='supervisionitem',
            name='compliance_sv_item_state',
        ),
        migrations.AddField(
            model_name='supervisionitem',
            name='close_reason_sealed',
            field=models.BinaryField(blank=True, default=b''),
        ),
        migrations.AddField(
            model_name='supervisionitem',
            name='escalation_note_sealed',
            field=models.BinaryField(blank=True, default=b''),
        ),
        migrations.RunPython(seal_notes, migrations.RunPython.noop),
    ]
