from django.db import migrations, models


def fill(apps, schema_editor):
    from bastion.core.names import confusable_key

    Project = apps.get_model("projects", "Project")
    for project in Project.objects.all().only("pk", "name"):
        Project.objects.filter(pk=project.pk).update(confusable_key=confusable_key(project.name))


class Migration(migrations.Migration):
    dependencies = [("projects", "0002_index_state_row")]

    operations = [
        migrations.AddField(
            model_name="project",
            name="confusable_key",
            field=models.CharField(db_index=True, default="", max_length=200),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
