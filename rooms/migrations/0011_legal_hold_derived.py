"""A room's legal hold and retention reference become the compliance app's records
(``compliance.LegalHold``, ``compliance.RetentionPolicy``): the flags set before are
carried over first (``compliance.0002``), then the fields go."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("rooms", "0010_room_visibility_and_mute"),
        ("compliance", "0002_holds_from_room_flags"),
    ]

    operations = [
        migrations.RemoveField(model_name="room", name="legal_hold"),
        migrations.RemoveField(model_name="room", name="retention_policy"),
    ]
