"""Accounts' addresses in the one spelling of their mailbox (core.mail.delivery_address),
as new ones are kept: `x@ｅｘａｍｐｌｅ.com` becomes x@example.com, so that signing up
as x@example.com finds it. An address whose spelling another account has already (two
accounts for one mailbox, made before) or that would not be one once unquoted stays as it
is; it still signs in as typed (UserManager.address_kept)."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import migrations

from core.mail import delivery_address
from core.validators import mailable_address


def one_spelling(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    for pk, email in User.objects.values_list("pk", "email").iterator():
        canonical = delivery_address(email)
        if canonical == email or len(canonical) > 254:
            continue
        try:
            validate_email(canonical)
            mailable_address(canonical)
        except ValidationError:
            continue
        if not User.objects.filter(email__iexact=canonical).exclude(pk=pk).exists():
            User.objects.filter(pk=pk).update(email=canonical)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0015_project_name_holds_no_token"),
    ]

    operations = [migrations.RunPython(one_spelling, migrations.RunPython.noop, elidable=True)]
