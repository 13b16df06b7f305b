from django.db import migrations


def case_insensitive_skeletons(apps, schema_editor):
    """Every account's skeleton recomputed case-insensitively
    (``safechat.unicode_text.case_insensitive_skeleton``), so "b0b.smith" meets
    "bob.smith". An account that now looks like an older one keeps a skeleton marked with
    its id (a space never occurs in a username), as in 0007; a security admin renames it
    (docs/accounts.md, "Usernames")."""
    from safechat.unicode_text import case_insensitive_skeleton

    User = apps.get_model("accounts", "User")
    wanted, seen = {}, set()
    for pk, username in User.objects.order_by("pk").values_list("pk", "username"):
        skeleton = case_insensitive_skeleton(username)
        if skeleton in seen:
            skeleton = f"{skeleton} #{pk}"
        seen.add(skeleton)
        wanted[pk] = skeleton
    # Through a value unique per row first, so no update meets the unique constraint.
    for pk in wanted:
        User.objects.filter(pk=pk).update(username_skeleton=f" #{pk}")
    for pk, skeleton in wanted.items():
        User.objects.filter(pk=pk).update(username_skeleton=skeleton)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0015_scim_provisioning")]

    operations = [migrations.RunPython(case_insensitive_skeletons, migrations.RunPython.noop)]
