"""Every power is a role: superusers, permissions given to one account, and permissions
of groups that are not roles are taken away, then superusers are made impossible."""

from typing import Any

from django.db import migrations, models

# The role groups as this migration knows them (accounts.roles.Role).
ROLE_GROUPS = ("member", "room_admin", "compliance_officer", "security_admin")


def powers_outside_roles_removed(apps: Any, schema_editor: Any) -> None:
    user_model = apps.get_model("accounts", "User")
    group_model = apps.get_model("auth", "Group")
    # A former superuser stays staff only if a staff role says so (accounts.roles).
    staff_roles = ("compliance_officer", "security_admin")
    former = user_model.objects.filter(is_superuser=True)
    former.exclude(groups__name__in=staff_roles).update(is_staff=False)
    user_model.objects.filter(is_superuser=True).update(is_superuser=False)
    user_model.user_permissions.through.objects.all().delete()
    group_model.permissions.through.objects.exclude(group__name__in=ROLE_GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0008_token_scope_audit"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.RunPython(powers_outside_roles_removed, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.CheckConstraint(
                condition=models.Q(("is_superuser", False)),
                name="accounts_user_no_superuser",
                violation_error_message="SafeChat has no superusers.",
            ),
        ),
    ]
