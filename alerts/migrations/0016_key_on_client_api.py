"""A new kind of alert, key_on_client_api: an API key sent to the Client API, from a
browser's code (alerts/detection/keys_on_client_api.py). Its choices only: no row changes,
and on PostgreSQL no statement runs."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("alerts", "0015_flag_occurrences_64_bit"),
    ]

    operations = [
        migrations.AlterField(
            model_name="flag",
            name="kind",
            field=models.CharField(
                choices=[
                    ("ended_token_used", "Revoked or expired token still in use"),
                    ("new_network", "Used from a new network"),
                    ("volume_spike", "Volume spike"),
                    ("auth_failure_burst", "Burst of auth or permission failures"),
                    ("client_token_many_ips", "Client token used from many addresses"),
                    ("unused_key", "Unused for a long time"),
                    ("blocked_network", "Used from outside its allowed networks"),
                    ("found_in_public", "Found in public by GitHub's secret scanning"),
                    ("new_agent", "Called agents it had not called"),
                    ("signs_together", "Several signs of a leak at once"),
                    ("key_on_client_api", "Sent to the Client API, from a browser"),
                ],
                max_length=32,
            ),
        ),
    ]
