"""The client tokens page reads the tokens of its window (alive or ended in the last week)
from an index of the project's tokens, newest first, and no further back.

Client tokens are never removed, and a backend mints one per browser session: the page,
which filtered every token of the project by "recent" and sorted what was left by id,
read the whole table, every tenant's (a parallel seq scan of 300,000 tokens, 40 ms, on
every load of a project that minted little this week; seconds at tens of millions).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ClientToken
from apikeys.services import client_token_create
from tests.plans import plan_nodes, rows_read


def client_token_rows_read(sql: str) -> int:
    """How many rows the plan took from the client tokens (kept and filtered out)."""
    return rows_read(plan_nodes(sql, analyze=True), "apikeys_clienttoken")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_client_tokens_page_reads_this_weeks_tokens_not_the_projects_history(
    signed_in, project, api_key
):
    key, _ = api_key
    # Minted (and ended) a month ago, a minute apart: out of the page's window. A thousand,
    # not forty: among forty, reading them all by another index and sorting them costs
    # the planner about what the walk does, and it took that plan once other tests' rows
    # had been analysed (CI, PostgreSQL: 44 rows read); at a thousand the walk is the
    # cheaper by far, as at any size where the page's read matters.
    month_ago = timezone.now() - timedelta(days=30)
    ClientToken.objects.bulk_create(
        ClientToken(
            project=project,
            api_key=key,
            token_hash=f"{n:064x}",
            hint="reminix_ct_old…",
            created_at=month_ago + timedelta(minutes=n),
            expires_at=month_ago + timedelta(minutes=n, hours=1),
        )
        for n in range(1000)
    )
    recent = [client_token_create(project=project, api_key=key, context={})[0] for _ in range(3)]
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE apikeys_clienttoken")

    with CaptureQueriesContext(connection) as captured:
        page = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug]))
    assert page.status_code == 200
    html = page.content.decode()
    assert all(token.public_id in html for token in recent)
    [listed] = [
        q["sql"]
        for q in captured
        if q["sql"].startswith('SELECT "apikeys_clienttoken"."id"') and "LIMIT 51" in q["sql"]
    ]
    # The three, and the newest token too old to be alive, whose id bounds the walk.
    assert client_token_rows_read(listed) <= len(recent) + 1


def test_a_client_token_longer_lived_than_the_page_counts_on_is_refused(project, api_key):
    key, _ = api_key
    with pytest.raises(ValueError):
        client_token_create(project=project, api_key=key, context={}, ttl_seconds=86401)
