"""Drop the text columns of the reviewers' notes (sealed by 0007) and hold the decision
rule on the sealed ones: an escalated item has a note, a closed one a reason."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0007_supervision_notes_sealed'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='supervisionitem',
            name='close_reason',
        ),
        migrations.RemoveField(
            model_name='supervisionitem',
            name='escalation_note',
        ),
        migrations.AddConstraint(
            model_name='supervisionitem',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('closed_by__isnull', True), ('escalated_by__isnull', True), ('state', 'pending')), models.Q(('closed_by__isnull', True), ('escalated_by__isnull', False), ('state', 'escalated'), models.Q(('escalation_note_sealed', b''), _negated=True)), models.Q(('closed_at__isnull', False), ('closed_by__isnull', False), ('state', 'closed'), models.Q(('close_reason_sealed', b''), _negated=True)), _connector='OR'), name='compliance_sv_item_state'),
        ),
    ]
