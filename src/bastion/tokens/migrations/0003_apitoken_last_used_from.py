from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("tokens", "0002_apitoken_seen_addresses"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="last_used_from",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
    ]
