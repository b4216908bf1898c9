"""Revoking all client tokens of a key writes once, to the key: the highest client token
id then (`client_tokens_revoked_through`) and when (`client_tokens_revoked_at`). Every
client token the key minted with an id up to it is refused (api/lookup.py reads the key
with the token), so nothing is written per token: whoever held a leaked key could mint
so many that an UPDATE of each ran past the statement timeout. Nullable columns: no
rewrite of the table."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0026_client_token_minted_in"),
    ]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="client_tokens_revoked_through",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="apikey",
            name="client_tokens_revoked_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
