"""An earlier text records its room (``MessageRevision.room``), filled from its message,
so retention asks by index whether anything is left under an epoch before destroying
its key; and messages get the index retention reads an epoch's oldest through.

The backfill goes in batches of ``BATCH`` revisions (ascending id), each one UPDATE, so
no statement grows with the table. Reversible: going back drops the column.
"""

from typing import Any

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

BATCH = 5000


def revision_rooms_backfill(apps: Any, schema_editor: Any) -> None:
    """Set every revision's room to its message's, ``BATCH`` revisions per statement."""
    revisions = apps.get_model("rooms", "MessageRevision")
    messages = apps.get_model("rooms", "Message")
    db = schema_editor.connection.alias
    room_of_message = Subquery(
        messages.objects.using(db).filter(pk=OuterRef("message_id")).values("room_id")[:1]
    )
    last = 0
    while True:
        ids = list(
            revisions.objects.using(db)
            .filter(pk__gt=last, room__isnull=True)
            .order_by("pk")
            .values_list("pk", flat=True)[:BATCH]
        )
        if not ids:
            break
        revisions.objects.using(db).filter(pk__in=ids).update(room_id=room_of_message)
        last = ids[-1]
    if schema_editor.connection.vendor == "postgresql":
        # The updates' deferred foreign-key checks run now: PostgreSQL refuses to alter a
        # table with checks still pending, and the column becomes NOT NULL next.
        schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


class Migration(migrations.Migration):
    dependencies = [
        ("rooms", "0011_legal_hold_derived"),
    ]

    operations = [
        migrations.AddField(
            model_name="messagerevision",
            name="room",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="rooms.room",
            ),
        ),
        migrations.RunPython(revision_rooms_backfill, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="messagerevision",
            name="room",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="rooms.room",
            ),
        ),
        migrations.AddIndex(
            model_name="messagerevision",
            index=models.Index(fields=["room", "epoch"], name="rooms_revision_room_epoch"),
        ),
        migrations.AddIndex(
            model_name="message",
            index=models.Index(
                fields=["room", "epoch", "created_at", "id"], name="rooms_message_room_epoch_age"
            ),
        ),
    ]
