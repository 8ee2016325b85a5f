"""Create the single IndexState row up front, so concurrent first uploads never race to it."""

from django.db import migrations


def create_row(apps, schema_editor):
    IndexState = apps.get_model("projects", "IndexState")
    IndexState.objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("projects", "0001_initial")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
