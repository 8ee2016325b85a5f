"""Files are no longer indexed by sha256 alone (bastion.projects.models): every look-up by it
also names the unique storage key, and an upload wrote the index."""

from django.db import migrations, models

from bastion.schema import drop_column_indexes


class Migration(migrations.Migration):
    dependencies = [
        ("projects", "0005_invitations_deleted_projects"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="file",
                    name="sha256",
                    field=models.CharField(max_length=64),
                ),
            ],
            database_operations=[drop_column_indexes("projects", "file", "sha256")],
        ),
    ]
