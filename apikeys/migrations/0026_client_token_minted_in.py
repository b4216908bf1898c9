"""A client token a PAT mints records the membership it was minted in (`minted_in`, its
id): it dies with that membership, and a later one (the person removed, then added again)
never brings it back, whatever the clocks of the instances that wrote the two rows say.
Tokens from before keep the comparison of times (api/lookup.py). A nullable column: no
rewrite of the table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0025_key_names_unique"),
    ]

    operations = [
        migrations.AddField(
            model_name="clienttoken",
            name="minted_in",
            field=models.BigIntegerField(blank=True, null=True),
        ),
    ]
