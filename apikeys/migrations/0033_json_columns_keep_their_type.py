"""A key's, PAT's or client token's JSON columns hold what the services write, and the
database refuses anything else: `permissions`, `allowed_networks`, `agent_names` and
`agent_actions` a list, a client token's `context` and `server_context` an object
(core/json_type.py). A row edited by hand or restored from elsewhere with another type
there made the pages that list it answer 500.

Rows already of another type are repaired first, failing closed: no token gains access.
- `permissions` becomes [] (no permission).
- An empty `allowed_networks` allows any network, an empty `agent_names` or
  `agent_actions` every agent or both actions, and a client token's contexts are what its
  agents are told about who calls: so a token with any of those of another type is revoked
  (if it was not already), in the audit trail as revoked by this upgrade with the columns
  why, and the column then set to [] (or {}), which the revocation makes moot. What the
  column held was no list, so no list can be read from it that the token's owner meant.

One UPDATE per column (and one to revoke per model), on tables of tokens, in the
migration's one transaction with the constraints: nothing can write a row of the wrong
type between the repair and the constraint. Going back drops the constraints only.
"""

from django.db import migrations
from django.db.models import F, Q
from django.utils import timezone

from core.json_type import AddJsonTypeCheck, JsonType, json_type_check, json_type_repair, report

UPGRADE = "the upgrade that made tokens' JSON columns keep their type (apikeys 0033)"
SCOPE = {"agent_names": "array", "agent_actions": "array"}
# Per model: its prefix in constraint names, its revocation's audit action, the columns
# whose empty value would widen what the token may do (checked: revoke), and those
# whose empty value narrows it (permissions: []).
MODELS = {
    "ApiKey": ("apikey", "api_key.revoked", {**SCOPE, "allowed_networks": "array"}),
    "PersonalAccessToken": (
        "pat",
        "personal_token.revoked",
        {**SCOPE, "allowed_networks": "array"},
    ),
    "ClientToken": (
        "ctoken",
        "client_token.revoked",
        {**SCOPE, "context": "object", "server_context": "object"},
    ),
}
NARROWING = {"ApiKey": {"permissions": "array"}, "PersonalAccessToken": {"permissions": "array"}}
EMPTY = {"array": [], "object": {}}


def repair(apps, schema_editor):
    using = schema_editor.connection.alias
    AuditEvent = apps.get_model("audit", "AuditEvent")
    now = timezone.now()
    for model_name, (_, action, widening) in MODELS.items():
        Model = apps.get_model("apikeys", model_name)
        table = Model._meta.db_table
        typed = Model.objects.using(using).alias(
            **{f"{field}_type": JsonType(F(field)) for field in widening}
        )
        odd = Q()
        for field, json_type in widening.items():
            odd |= ~Q(**{f"{field}_type": json_type})
        revoking = list(typed.filter(odd, revoked_at__isnull=True))
        Model.objects.using(using).filter(pk__in=[t.pk for t in revoking]).update(revoked_at=now)
        AuditEvent.objects.using(using).bulk_create(
            [
                _revoked_event(AuditEvent, token, model_name, action, widening, now)
                for token in revoking
            ]
        )
        if revoking:
            print(f"  {table}: {len(revoking)} token(s) revoked (a JSON column of another type)")
        columns = {**widening, **NARROWING.get(model_name, {})}
        report(
            table,
            {
                field: json_type_repair(Model, field, json_type, EMPTY[json_type], using=using)
                for field, json_type in columns.items()
            },
        )


def _revoked_event(AuditEvent, token, model_name, action, widening, now):
    odd = [
        field
        for field, json_type in widening.items()
        if not isinstance(getattr(token, field), dict if json_type == "object" else list)
    ]
    if model_name == "ClientToken":
        label = token.public_id
    else:
        label = f"{token.name} ({token.hint})"
    return AuditEvent(
        action=action,
        created_at=now,
        # A PAT belongs to no project: its owner's own audit page lists what has the owner
        # as actor (as a sign-in attempt on their account is), and names this upgrade.
        actor_id=getattr(token, "user_id", None),
        actor_email=UPGRADE,
        project_id=getattr(token, "project_id", None),
        target_type=model_name.lower(),
        target_id=str(token.pk),
        target_label=label[:200],
        metadata={
            "via": UPGRADE,
            "why": f"{', '.join(odd)} held JSON of another type than the dashboard writes",
        },
    )


def _checks():
    for model_name, (prefix, _, widening) in MODELS.items():
        for field, json_type in {**widening, **NARROWING.get(model_name, {})}.items():
            name = f"{prefix}_{field}_is_{json_type}"
            constraint = json_type_check(field=field, json_type=json_type, name=name)
            yield AddJsonTypeCheck(model_name=model_name.lower(), constraint=constraint)


class Migration(migrations.Migration):
    dependencies = [
        ("apikeys", "0032_names_without_disguised_tokens"),
        ("audit", "0005_user_agent"),
    ]

    operations = [
        # The repairs are not undone going back: no token is given back what it lost.
        migrations.RunPython(repair, migrations.RunPython.noop),
        *_checks(),
    ]
