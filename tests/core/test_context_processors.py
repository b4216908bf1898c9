"""What every page's template context costs: nothing on the fragments that don't show it."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from alerts.models import Flag
from apikeys.services import personal_token_create


def tables_read(client, url: str, **headers: str) -> str:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    assert response.status_code == 200
    return " ".join(query["sql"] for query in queries.captured_queries)


def test_a_fragment_pays_no_query_for_the_banner_or_the_alert_count(signed_in, user, project):
    personal_token_create(user=user, name="CLI", expires_at=timezone.now() + timedelta(days=2))
    url = reverse("usage:project_usage", args=[project.slug])

    fragment = tables_read(signed_in, url, **{"HX-Request": "true"})
    page = tables_read(signed_in, url)

    for table in (Flag._meta.db_table, "apikeys_personalaccesstoken"):
        assert table not in fragment
        assert table in page  # the whole page shows both, so it asks


def test_the_whole_page_shows_the_banner_and_the_count(signed_in, user, project):
    # Its last day: even a token made short on purpose is announced then.
    personal_token_create(user=user, name="CLI", expires_at=timezone.now() + timedelta(hours=20))

    html = signed_in.get(reverse("overview:project_overview", args=[project.slug])).content
    assert "Your personal access token “<bdi>CLI</bdi>” expires".encode() in html
