from django.db import migrations, models


class Migration(migrations.Migration):
    """A bin's targets are read together on every upload: one index holds them all, in order."""

    dependencies = [("signing", "0001_initial")]

    operations = [
        migrations.AddIndex(
            model_name="target",
            index=models.Index(
                fields=["bin", "path", "length", "sha256", "blake2b_256"],
                name="signing_target_bin_rows",
            ),
        ),
    ]
