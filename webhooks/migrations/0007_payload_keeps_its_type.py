"""A webhook delivery's `payload` is the event's object (webhooks/payloads.py), and the
database refuses anything else (core/json_type.py). Another type there (a row edited by
hand or restored from elsewhere) is kept, not dropped: {"stored": what was there}; a
delivery of one that had not gone out yet gives up, with why, rather than send the
endpoint a body that is no event of ours.

One UPDATE each, then the constraint added NOT VALID and validated (core.json_type.
AddJsonTypeCheck), each in its own transaction (`atomic = False`), so that on PostgreSQL
none holds off the senders for the length of a scan. Stopped at any point, it can be run
again. Going back drops the constraint."""

from django.db import migrations
from django.db.models import F

from core.json_type import (
    AddJsonTypeCheck,
    JsonType,
    JsonWrapped,
    json_type_check,
    json_type_repair,
    report,
)

NOT_SENT = "Its payload was not a JSON object (changed outside the dashboard): not sent."


def repair(apps, schema_editor):
    WebhookDelivery = apps.get_model("webhooks", "WebhookDelivery")
    using = schema_editor.connection.alias
    stopped = (
        WebhookDelivery.objects.using(using)
        .alias(payload_type=JsonType(F("payload")))
        .exclude(payload_type="object")
        .filter(status__in=("pending", "sending", "failed"))
        .update(status="gave_up", next_attempt_at=None, last_error=NOT_SENT)
    )
    if stopped:
        print(f"  {WebhookDelivery._meta.db_table}: {stopped} delivery(ies) given up")
    wrapped = JsonWrapped("stored", "payload")
    report(
        WebhookDelivery._meta.db_table,
        {"payload": json_type_repair(WebhookDelivery, "payload", "object", wrapped, using=using)},
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("webhooks", "0006_delivery_attempts_32_bit"),
    ]

    operations = [
        migrations.RunPython(repair, migrations.RunPython.noop),
        AddJsonTypeCheck(
            model_name="webhookdelivery",
            constraint=json_type_check(
                field="payload", json_type="object", name="webhookdelivery_payload_is_object"
            ),
        ),
    ]
