"""Carry every room's ``legal_hold`` flag over as an active hold on that room, so no
room held before this release is left unheld when the flag goes (``rooms.0008``).

The carried holds name the room's creator (or the first account) as who placed them and
say where they came from; a compliance officer reviews and, if right, releases them
through the admin (audited). The free ``retention_policy`` text named no number of days
and is not carried over: until a policy is set everything is kept forever.
"""

from typing import Any

from django.db import migrations
from django.utils import timezone


def carry_over(apps: Any, schema_editor: Any) -> None:
    room_model = apps.get_model("rooms", "Room")
    hold_model = apps.get_model("compliance", "LegalHold")
    user_model = apps.get_model("accounts", "User")
    held = list(room_model.objects.filter(legal_hold=True).order_by("pk"))
    if not held:
        return
    fallback = user_model.objects.order_by("pk").first()
    for room in held:
        placed_by = room.created_by_id or (fallback.pk if fallback else None)
        if placed_by is None:
            continue
        hold = hold_model.objects.create(
            matter="carried over",
            reason="The room was marked as under legal hold before holds were records.",
            placed_by_id=placed_by,
            placed_at=timezone.now(),
        )
        hold.rooms.set([room.pk])


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0001_initial"),
        ("rooms", "0007_change_feed"),
    ]

    operations = [migrations.RunPython(carry_over, migrations.RunPython.noop)]
