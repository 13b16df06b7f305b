"""Direct conversations hold no power over anyone: every participant is a member.

Until now the starter of a direct conversation was its owner, and so could delete the
other participants' messages and files, rename it, archive it or rotate its key. From
now on every participant is a plain member (``rooms.services.direct_conversation_create``);
this migration makes the existing ones so: owner and moderator memberships of direct
conversations become member, and their object permissions (django-guardian) lose
``manage_members`` and ``manage_room``. Channels are untouched. Going back leaves them
members (the earlier code accepts a direct conversation without an owner).
"""

from django.db import migrations

ELEVATED = ("owner", "moderator")
MANAGING = ("manage_members", "manage_room")


def direct_participants_members(apps, schema_editor):
    Room = apps.get_model("rooms", "Room")
    Membership = apps.get_model("rooms", "Membership")
    ContentType = apps.get_model("contenttypes", "ContentType")
    UserObjectPermission = apps.get_model("guardian", "UserObjectPermission")
    direct_ids = list(Room.objects.filter(kind="direct").values_list("pk", flat=True))
    if not direct_ids:
        return
    Membership.objects.filter(room_id__in=direct_ids, role__in=ELEVATED).update(role="member")
    room_type = ContentType.objects.filter(app_label="rooms", model="room").first()
    if room_type is None:
        return
    for start in range(0, len(direct_ids), 1000):
        UserObjectPermission.objects.filter(
            content_type=room_type,
            object_pk__in=[str(pk) for pk in direct_ids[start : start + 1000]],
            permission__codename__in=MANAGING,
        ).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("rooms", "0008_rekey_reason"),
        ("guardian", "0003_remove_groupobjectpermission_guardian_gr_content_ae6aec_idx_and_more"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.RunPython(direct_participants_members, migrations.RunPython.noop),
    ]
