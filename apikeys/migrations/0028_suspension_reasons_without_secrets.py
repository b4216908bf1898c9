"""A token pasted into a key's suspension reason before the form and the API refused one
(core.validators.no_secret_in_reason) is cut from it: the reason goes into every 401 the
key gets, the key list and /v1/api-keys. Its prefix stays, as in every other redaction,
so a reader still sees what kind of token leaked; a hint (four characters) is no secret."""

from django.db import migrations

from core.redact import redact_secrets


def cut_secrets(apps, schema_editor):
    ApiKey = apps.get_model("apikeys", "ApiKey")
    held = ApiKey.objects.filter(suspended_reason__icontains="reminix_")
    for pk, reason in held.values_list("pk", "suspended_reason").iterator():
        cut = redact_secrets(reason)
        if cut != reason:
            ApiKey.objects.filter(pk=pk).update(suspended_reason=cut)


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0027_api_key_client_tokens_revoked_through"),
    ]

    operations = [migrations.RunPython(cut_secrets, migrations.RunPython.noop)]
