"""Create the role groups with their permissions (accounts/roles.py documents them)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def create_roles(apps, schema_editor):
    from accounts.roles import roles_sync

    # Permissions are normally created after all migrations; create the ones the
    # roles need now (accounts' custom ones, and audit's view permission).
    for label in ("accounts", "audit"):
        try:
            app_config = apps.get_app_config(label)
        except LookupError:
            continue
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    roles_sync(apps=apps)


def delete_roles(apps, schema_editor):
    from accounts.roles import Role

    apps.get_model("auth", "Group").objects.filter(name__in=[r.value for r in Role]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_sessions_tokens_factors"),
        ("audit", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, delete_roles)]
