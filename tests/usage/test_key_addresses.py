"""A key's usage page lists its ten latest addresses and says how many more: those are a
link away, on a paged list of every address the key was used from."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage.writer import usage_write


@pytest.fixture
def busy(project: Project, make_key: Any) -> ApiKey:
    """A key used from 157 addresses, one a minute."""
    key, _ = make_key(project, name="Production")
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=i), key=key, ip=f"45.83.{i // 100}.{i % 100}")
            for i in range(157)
        ]
    )
    return key


def addresses_url(project: Project, key: ApiKey) -> str:
    return reverse("usage:api_key_addresses", args=[project.slug, key.pk])


def test_the_usage_page_links_the_addresses_it_leaves_out(
    signed_in: Client, project: Project, busy: ApiKey
) -> None:
    html = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, busy.pk])).content
    assert b"147 more" in html
    assert addresses_url(project, busy).encode() in html


def test_every_address_is_listed_once_most_recent_first_page_by_page(
    signed_in: Client, project: Project, busy: ApiKey
) -> None:
    response: Any = signed_in.get(addresses_url(project, busy))
    assert response.status_code == 200
    seen = list(response.context["page"].rows)
    while response.context["links"]["older"]:
        response = signed_in.get(response.context["links"]["older"])
        seen += response.context["page"].rows
    assert len(seen) == 157 == len({row.ip for row in seen})
    assert [row.last_seen for row in seen] == sorted((r.last_seen for r in seen), reverse=True)
    key_url = reverse("usage:api_key_usage", args=[project.slug, busy.pk])
    assert f"{key_url}?ip=45.83.0.0".encode() in signed_in.get(addresses_url(project, busy)).content


def test_another_projects_key_is_not_found(
    signed_in: Client, make_user: Any, make_project: Any, make_key: Any
) -> None:
    other = make_project(make_user(email="someone@example.com"), name="Other")
    key, _ = make_key(other, name="Theirs")
    assert signed_in.get(addresses_url(other, key)).status_code == 404


@pytest.mark.parametrize(
    "before",
    ["x", "99991231T235959.999999Z_1", "20261206T000000.000000Z_99999999999999999999", "²"],
)
def test_a_damaged_page_link_is_not_a_500(
    signed_in: Client, project: Project, busy: ApiKey, before: str
) -> None:
    response = signed_in.get(addresses_url(project, busy), {"before": before})
    assert response.status_code in (200, 400)


def test_a_damaged_page_link_says_once_to_start_again_from_the_latest_addresses(
    signed_in: Client, project: Project, busy: ApiKey
) -> None:
    """An addresses page's own words, once, however many of its cursors are damaged: it
    said "Start again from the newest calls" (the call logs' text), twice for two."""
    response = signed_in.get(addresses_url(project, busy), {"before": "x", "after": "y"})
    assert response.status_code == 400
    html = response.content.decode()
    assert html.count("Start again from the latest addresses") == 1
    assert "newest calls" not in html
