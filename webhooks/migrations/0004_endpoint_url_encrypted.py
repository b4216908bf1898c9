"""An endpoint's URL is a credential (a Slack incoming webhook's path is): it moves from
the plain `url` column into `url_encrypted`, encrypted like the signing secret. Reversible:
going back decrypts it into `url` again."""

from django.db import migrations, models

from webhooks.signing import url_decrypt, url_encrypt


def encrypt_urls(apps, schema_editor):
    Endpoint = apps.get_model("webhooks", "WebhookEndpoint")
    for pk, url in Endpoint.objects.values_list("pk", "url"):
        Endpoint.objects.filter(pk=pk).update(url_encrypted=url_encrypt(url))


def decrypt_urls(apps, schema_editor):
    Endpoint = apps.get_model("webhooks", "WebhookEndpoint")
    for pk, token in Endpoint.objects.values_list("pk", "url_encrypted"):
        Endpoint.objects.filter(pk=pk).update(url=url_decrypt(token))


class Migration(migrations.Migration):

    dependencies = [
        ("webhooks", "0003_delivery_age_index"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookendpoint",
            name="url_encrypted",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        # A default for the column only so that going back can add it to existing rows
        # before decrypt_urls fills it.
        migrations.AlterField(
            model_name="webhookendpoint",
            name="url",
            field=models.CharField(default="", max_length=2000),
        ),
        migrations.RunPython(encrypt_urls, decrypt_urls),
        migrations.RemoveField(
            model_name="webhookendpoint",
            name="url",
        ),
    ]
