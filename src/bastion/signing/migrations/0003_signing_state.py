from django.db import migrations, models


def signed_so_far(apps, schema_editor):
    """Until now every change was signed in its own transaction: all of them are signed."""
    IndexState = apps.get_model("projects", "IndexState")
    SigningState = apps.get_model("signing", "SigningState")
    serial = IndexState.objects.filter(pk=1).values_list("serial", flat=True).first()
    SigningState.objects.create(pk=1, serial=serial or 0)


class Migration(migrations.Migration):
    """The index serial through which changes are signed (uploads are signed in batches)."""

    dependencies = [
        ("signing", "0002_target_bin_covering_index"),
        ("projects", "0005_invitations_deleted_projects"),
    ]

    operations = [
        migrations.CreateModel(
            name="SigningState",
            fields=[
                (
                    "id",
                    models.PositiveSmallIntegerField(default=1, primary_key=True, serialize=False),
                ),
                ("serial", models.BigIntegerField(default=0)),
            ],
            options={"db_table": "signing_state"},
        ),
        migrations.RunPython(signed_so_far, migrations.RunPython.noop),
    ]
