"""The Alerts page reads the keys, client tokens and people of the alerts it shows, not those
of every alert open.

The open alerts were picked, most pressing first, from a join of every open alert with its
key, client token and acknowledger: PostgreSQL joined all of them before it sorted and cut
to the 100 shown, hashing the whole client token table, every tenant's, to do it (2,000
open alerts and 20,000 client tokens: 90 ms of a 530 ms page, and client tokens are minted
one per browser session).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts import views
from alerts.models import Flag
from apikeys.services import client_token_create
from tests.plans import plan_nodes, rows_read


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_alerts_page_reads_the_client_tokens_of_the_alerts_it_shows(
    signed_in, project, api_key, user, monkeypatch
):
    monkeypatch.setattr(views, "OPEN_SHOWN", 3)
    key, _ = api_key
    now = timezone.now()
    tokens = [client_token_create(project=project, api_key=key, context={})[0] for _ in range(60)]
    Flag.objects.bulk_create(
        Flag(
            project=project,
            api_key=key,
            client_token=token,
            kind=Flag.Kind.CLIENT_TOKEN_MANY_IPS,
            severity=Flag.Severity.MEDIUM,
            dedupe_key=f"many-ips:{token.pk}",
            summary="Used from many addresses",
            first_seen=now - timedelta(minutes=n),
            last_seen=now - timedelta(minutes=n),
            # Ten acknowledged: the page's second list.
            acknowledged_at=now if n >= 30 and n < 40 else None,
            acknowledged_by=user if n >= 30 and n < 40 else None,
        )
        for n, token in enumerate(tokens)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE apikeys_flag")
        cursor.execute("ANALYZE apikeys_clienttoken")

    with CaptureQueriesContext(connection) as captured:
        page = signed_in.get(reverse("alerts:flag_list", args=[project.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    shown = [tokens[0], tokens[1], tokens[2], *tokens[30:40]]
    assert all(token.public_id in html for token in shown)
    assert tokens[3].public_id not in html
    read = sum(
        rows_read(plan_nodes(q["sql"], analyze=True), "apikeys_clienttoken")
        for q in captured
        if "apikeys_clienttoken" in q["sql"]
    )
    assert read <= len(shown)
