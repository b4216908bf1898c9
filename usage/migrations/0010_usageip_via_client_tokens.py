# A key's addresses, told apart: those of the calls made with the key itself and those of
# the client tokens it minted (UsageIp.via_client_tokens, usage/models.py).
#
# The rows already there held both kinds under one (key, address). They are sorted by the
# calls the log still holds, which reach as far back as any row does (usage_prune keeps
# UsageIp rows last seen after its cut-off and the calls made after it):
# - an address with no client-token call in the log stays the key's own, as it was;
# - one whose calls in the log all came through client tokens becomes theirs, its whole
#   count and first seen with it: the key's secret has not been used from it since the
#   log begins;
# - one with both is split: the client tokens' part is what the log holds of their calls
#   (count, first and last), the key keeps the rest of the count (and so any calls from
#   before the log: of either kind, no longer knowable, and the key did use the address),
#   the first seen if it is older than the log's calls from there, and its own last call.
# Only the client tokens' calls are grouped (a minority of the log) and two index probes
# (usage_key_ip_time) are made per address they were used from; the key's own calls are
# never scanned. On PostgreSQL the usage write lock is held, as in 0007, so a batch written
# meanwhile waits and then counts on the new rows, never twice.

from django.db import migrations, models
from django.db.models import Count, Max, Min

_WRITE_LOCK = 0x7573616765  # usage/writer.py's lock

SPLIT_SQL = """
WITH tokens AS (
    SELECT api_key_id, ip, count(*) AS n, min(created_at) AS first, max(created_at) AS last
    FROM apikeys_usagerecord
    WHERE client_token_id IS NOT NULL AND api_key_id IS NOT NULL AND ip IS NOT NULL
    GROUP BY api_key_id, ip
), sorted AS (
    SELECT t.*,
        (SELECT min(r.created_at) FROM apikeys_usagerecord r WHERE r.api_key_id = t.api_key_id
         AND r.ip = t.ip AND r.client_token_id IS NULL) AS own_first,
        (SELECT max(r.created_at) FROM apikeys_usagerecord r WHERE r.api_key_id = t.api_key_id
         AND r.ip = t.ip AND r.client_token_id IS NULL) AS own_last
    FROM tokens t
), moved AS (
    UPDATE apikeys_usageip u SET via_client_tokens = true
    FROM sorted s
    WHERE u.api_key_id = s.api_key_id AND u.ip = s.ip AND s.own_last IS NULL
), kept AS (
    UPDATE apikeys_usageip u SET
        requests = GREATEST(u.requests - s.n, 1),
        first_seen = CASE WHEN u.first_seen < LEAST(s.first, s.own_first) THEN u.first_seen
                     ELSE s.own_first END,
        last_seen = s.own_last
    FROM sorted s
    WHERE u.api_key_id = s.api_key_id AND u.ip = s.ip AND s.own_last IS NOT NULL
    RETURNING u.project_id, u.api_key_id, u.ip, s.n, s.first, s.last
)
INSERT INTO apikeys_usageip (project_id, api_key_id, ip, via_client_tokens, first_seen,
                             last_seen, requests)
SELECT project_id, api_key_id, ip, true, first, last, n FROM kept
"""


def split(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_WRITE_LOCK])
            # A big log takes longer than the statement timeout the app runs with.
            cursor.execute("SET LOCAL statement_timeout = 0")
            cursor.execute(SPLIT_SQL)
        return
    calls = apps.get_model("usage", "UsageRecord").objects
    addresses = apps.get_model("usage", "UsageIp").objects
    tokens = (
        calls.filter(client_token__isnull=False, api_key__isnull=False, ip__isnull=False)
        .values("api_key_id", "ip")
        .annotate(n=Count("id"), first=Min("created_at"), last=Max("created_at"))
        .order_by()
    )
    for t in tokens.iterator(chunk_size=2000):
        row = addresses.filter(api_key_id=t["api_key_id"], ip=t["ip"]).first()
        if row is None:
            continue
        own = calls.filter(
            api_key_id=t["api_key_id"], ip=t["ip"], client_token__isnull=True
        ).aggregate(first=Min("created_at"), last=Max("created_at"))
        if own["last"] is None:
            row.via_client_tokens = True
            row.save(update_fields=["via_client_tokens"])
            continue
        addresses.create(
            project_id=row.project_id,
            api_key_id=row.api_key_id,
            ip=row.ip,
            via_client_tokens=True,
            first_seen=t["first"],
            last_seen=t["last"],
            requests=t["n"],
        )
        if row.first_seen >= min(t["first"], own["first"]):
            row.first_seen = own["first"]
        row.requests = max(row.requests - t["n"], 1)
        row.last_seen = own["last"]
        row.save(update_fields=["first_seen", "last_seen", "requests"])


def merge(apps, schema_editor):
    """Back to one row per key and address: the client tokens' rows added to the key's."""
    addresses = apps.get_model("usage", "UsageIp").objects
    for browser in addresses.filter(via_client_tokens=True).iterator(chunk_size=2000):
        own = addresses.filter(
            api_key_id=browser.api_key_id, ip=browser.ip, via_client_tokens=False
        ).first()
        if own is None:
            browser.via_client_tokens = False
            browser.save(update_fields=["via_client_tokens"])
            continue
        own.first_seen = min(own.first_seen, browser.first_seen)
        own.last_seen = max(own.last_seen, browser.last_seen)
        own.requests += browser.requests
        own.save(update_fields=["first_seen", "last_seen", "requests"])
        browser.delete()


class Migration(migrations.Migration):
    dependencies = [("usage", "0009_agent_indexes")]

    operations = [
        migrations.AddField(
            model_name="usageip",
            name="via_client_tokens",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RemoveConstraint(model_name="usageip", name="usageip_unique_key_ip"),
        migrations.AddConstraint(
            model_name="usageip",
            constraint=models.UniqueConstraint(
                fields=("api_key", "ip", "via_client_tokens"), name="usageip_unique_key_ip_kind"
            ),
        ),
        migrations.RunPython(split, merge),
    ]
