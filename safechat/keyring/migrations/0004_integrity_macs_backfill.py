"""MAC every existing public key and sealed copy with the master key (through the record-MAC key).

A no-op where no key row lacks a MAC (a new database). Rows without one are MACed only
when the operator sets SAFECHAT_RECORD_MAC_BACKFILL=1 for this run (the upgrade from a
release before record MACs; each row is audited); otherwise the migration stops, because
a MAC vouches for whatever the row holds (docs/security-crypto.md).
Rows keep their ciphertexts and associated data: everything stored keeps decrypting.
"""

from django.db import migrations


def backfill(apps, schema_editor):
    from safechat.keyring.integrity import macs_backfill

    macs_backfill(
        user_keypairs=apps.get_model("keyring", "UserKeyPair"),
        compliance_keypairs=apps.get_model("keyring", "ComplianceKeyPair"),
        sealed_copies=apps.get_model("keyring", "SealedEpochKey"),
        record_mac_keys=apps.get_model("keyring", "RecordMacKey"),
    )


class Migration(migrations.Migration):

    dependencies = [
        ('keyring', '0003_integrity_macs'),
        # Each row MACed is audited.
        ('audit', '0004_revoke_app_privileges'),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
