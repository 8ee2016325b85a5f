"""Events are no longer indexed by kind or token (bastion.audit.models): no read looks them up
by either alone, and an upload wrote both indexes."""

from django.db import migrations, models

from bastion.schema import drop_column_indexes


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="kind",
                    field=models.CharField(max_length=64),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="token_id",
                    field=models.CharField(blank=True, default="", max_length=36),
                ),
            ],
            database_operations=[drop_column_indexes("audit", "event", "kind", "token_id")],
        ),
    ]
