"""Number each room's messages 1, 2, 3... so that clients can tell when they missed one."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import migrations, models
from django.db.backends.base.schema import BaseDatabaseSchemaEditor


def number_existing_messages(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Room = apps.get_model("rooms", "Room")
    Message = apps.get_model("rooms", "Message")
    for room in Room.objects.all().iterator():
        seq = 0
        for message_id in (
            Message.objects.filter(room=room).order_by("id").values_list("id", flat=True)
        ):
            seq += 1
            Message.objects.filter(pk=message_id).update(seq=seq)
        Room.objects.filter(pk=room.pk).update(message_seq=seq)


class Migration(migrations.Migration):
    dependencies = [("rooms", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="room",
            name="message_seq",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="message",
            name="seq",
            field=models.PositiveBigIntegerField(editable=False, null=True),
        ),
        migrations.RunPython(number_existing_messages, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="message",
            name="seq",
            field=models.PositiveBigIntegerField(editable=False),
        ),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                fields=("room", "seq"), name="rooms_message_room_seq_unique"
            ),
        ),
    ]
