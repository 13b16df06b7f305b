"""MAC every existing public key and sealed copy with the master key (through the record-MAC key).

Runs only where key rows exist, so a fresh database never touches the key provider here.
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
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
