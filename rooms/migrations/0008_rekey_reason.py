"""A pending rekey says why: ``Room.rekey_pending`` (a flag, set only when someone joined
a room that hides history) becomes ``Room.rekey_reason``, so the epoch it starts is
recorded with its true reason (``member-joined`` or ``member-deactivated``)."""

from django.db import migrations, models


def flag_to_reason(apps, schema_editor):
    Room = apps.get_model("rooms", "Room")
    Room.objects.filter(rekey_pending=True).update(rekey_reason="member-joined")


def reason_to_flag(apps, schema_editor):
    Room = apps.get_model("rooms", "Room")
    Room.objects.exclude(rekey_reason="").update(rekey_pending=True)


class Migration(migrations.Migration):

    dependencies = [
        ("rooms", "0007_change_feed"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="rekey_reason",
            field=models.CharField(blank=True, default="", editable=False, max_length=20),
        ),
        migrations.RunPython(flag_to_reason, reason_to_flag),
        migrations.RemoveField(
            model_name="room",
            name="rekey_pending",
        ),
    ]
