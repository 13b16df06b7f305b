"""The supervision version row: changed with every lexicon, term or sampling change, so
each process reloads its cached matcher and rates (compliance.services.supervision)."""

import uuid

from django.db import migrations, models
from django.utils import timezone


def seed(apps, schema_editor):
    version = apps.get_model("compliance", "SupervisionVersion")
    version.objects.get_or_create(
        pk=1, defaults={"version": uuid.uuid4(), "changed_at": timezone.now()}
    )


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0008_supervision_notes_text_dropped'),
    ]

    operations = [
        migrations.CreateModel(
            name='SupervisionVersion',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('version', models.UUIDField()),
                ('changed_at', models.DateTimeField()),
            ],
            options={
                'constraints': [models.CheckConstraint(condition=models.Q(('id', 1)), name='compliance_sv_version_one_row')],
            },
        ),
        migrations.RunPython(seed, migrations.RunPython.noop),
    ]
