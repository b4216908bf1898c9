"""The call logs read oldest first on request (the first call from an address is then on
the first page), with the keyset pager right both ways and the export in the same order."""

from __future__ import annotations

import csv
import io
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
def key(project: Project, make_key: Any) -> ApiKey:
    """120 calls a minute apart (two at the same instant, told apart by id), the first
    three from 45.83.64.17."""
    key, _ = make_key(project, name="Production")
    now = timezone.now().replace(microsecond=0)
    entries = [usage_call(now - timedelta(minutes=m), key=key, ip="10.20.0.5") for m in range(117)]
    entries += [
        usage_call(now - timedelta(minutes=m), key=key, ip="45.83.64.17") for m in (200, 201)
    ]
    entries.append(usage_call(now - timedelta(minutes=201), key=key, ip="45.83.64.17"))
    usage_write(entries)
    return key


def urls(project: Project, key: ApiKey) -> dict[str, str]:
    return {
        "project": reverse("usage:project_calls", args=[project.slug]),
        "key": reverse("usage:api_key_usage", args=[project.slug, key.pk]),
    }


def walk(client: Client, url: str, params: dict[str, str], link: str) -> list[list[Any]]:
    """Each page's rows, following `link` ("older" or "newer") to the end."""
    response: Any = client.get(url, params)
    assert response.status_code == 200
    pages = [response.context["page"].rows]
    while response.context["links"][link]:
        response = client.get(response.context["links"][link])
        pages.append(response.context["page"].rows)
    return pages


@pytest.mark.parametrize("log", ["project", "key"])
def test_oldest_first_starts_with_the_first_call_and_walks_forward_through_every_call(
    signed_in: Client, project: Project, key: ApiKey, log: str
) -> None:
    url = urls(project, key)[log]
    newest = [r.pk for page in walk(signed_in, url, {}, "older") for r in page]
    oldest = walk(signed_in, url, {"order": "oldest"}, "newer")
    assert [len(page) for page in oldest] == [50, 50, 20]
    assert [r.pk for page in oldest for r in page] == newest[::-1]
    first = oldest[0][0]
    assert first.ip == "45.83.64.17" and first.created_at == min(r.created_at for r in oldest[0])


@pytest.mark.parametrize("log", ["project", "key"])
def test_back_from_a_later_page_oldest_first_is_the_page_before(
    signed_in: Client, project: Project, key: ApiKey, log: str
) -> None:
    url = urls(project, key)[log]
    first: Any = signed_in.get(url, {"order": "oldest"})
    second: Any = signed_in.get(first.context["links"]["newer"])
    third: Any = signed_in.get(second.context["links"]["newer"])
    back: Any = signed_in.get(third.context["links"]["older"])
    assert [r.pk for r in back.context["page"].rows] == [r.pk for r in second.context["page"].rows]
    again: Any = signed_in.get(back.context["links"]["older"])
    assert [r.pk for r in again.context["page"].rows] == [r.pk for r in first.context["page"].rows]
    assert again.context["page"].is_first and not again.context["links"]["older"]
    assert "order=oldest" in again.context["links"]["first"]


def test_the_first_call_from_an_address_is_the_first_row_oldest_first(
    signed_in: Client, project: Project, key: ApiKey
) -> None:
    page = signed_in.get(
        urls(project, key)["key"], {"ip": "45.83.64.0/24", "order": "oldest"}
    ).context["page"]
    assert len(page.rows) == 3
    assert page.rows[0].created_at < page.rows[-1].created_at


def test_the_export_follows_the_order(signed_in: Client, project: Project, key: ApiKey) -> None:
    page: Any = signed_in.get(urls(project, key)["project"], {"order": "oldest"})
    export_url = page.context["export_url"]
    assert "order=oldest" in export_url
    response: Any = signed_in.get(export_url)
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1:]
    times = [row[0] for row in rows]
    assert len(times) == 120 and times == sorted(times)


def test_the_order_is_not_a_filter(signed_in: Client, project: Project, key: ApiKey) -> None:
    response: Any = signed_in.get(urls(project, key)["project"], {"order": "oldest"})
    assert not response.context["form"].is_filtered


@pytest.mark.parametrize("order", ["sideways", "oldest\x00", "²", "o" * 10_000])
def test_an_unknown_order_is_an_error_beside_its_field(
    signed_in: Client, project: Project, key: ApiKey, order: str
) -> None:
    response: Any = signed_in.get(urls(project, key)["project"], {"order": order})
    assert response.status_code == 400
    assert list(response.context["form"].errors) == ["order"]


@pytest.mark.parametrize(
    "cursor",
    [
        {"after": "99991231T235959.999999Z_1"},
        {"before": "99991231T235959.999999Z_9223372036854775807"},
        {"after": "00010101T000000.000000Z_1"},
        {"before": "00010101T000000.000000Z_1"},
    ],
)
@pytest.mark.parametrize("log", ["project", "key"])
def test_a_cursor_at_the_calendars_edges_answers_either_way(
    signed_in: Client,
    project: Project,
    key: ApiKey,
    log: str,
    cursor: dict[str, str],
) -> None:
    for order in ("", "oldest"):
        response: Any = signed_in.get(urls(project, key)[log], {**cursor, "order": order})
        assert response.status_code == 200
