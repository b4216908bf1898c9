"""A project's audit log narrowed to one key or token (`?target=apikey:42`): everything
that happened to it on one page, linked from the key's usage page, read from an index in
the page's order however long the trail."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import Project, User
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke, api_key_suspend
from audit.models import AuditEvent
from audit.reads import NEWEST_FIRST, PAGE_SIZE, AuditFilters
from tests.audit.test_filter_indexes import assert_walks_an_index_in_order


@pytest.fixture
def keys(project: Project, user: User, make_key: Any) -> tuple[ApiKey, ApiKey]:
    leaked, _ = make_key(project, name="Leaked")
    other, _ = make_key(project, name="Other")
    api_key_suspend(api_key=leaked, by=user, reason="gist", ip="203.0.113.9")
    api_key_revoke(api_key=leaked, by=user, ip="203.0.113.9")
    api_key_revoke(api_key=other, by=user, ip="203.0.113.9")
    return leaked, other


def audit_url(project: Project) -> str:
    return reverse("accounts:project_audit", args=[project.slug])


def test_the_target_filter_lists_everything_that_happened_to_one_key(
    signed_in: Client, project: Project, keys: tuple[ApiKey, ApiKey]
) -> None:
    leaked, _ = keys
    response: Any = signed_in.get(audit_url(project), {"target": f"apikey:{leaked.pk}"})
    assert response.status_code == 200
    entries = response.context["page"].entries
    assert [e.event.action for e in entries] == [
        "api_key.revoked",
        "api_key.suspended",
        "api_key.created",
    ]
    assert response.context["form"].is_filtered
    assert "Leaked" in response.content.decode()


def test_the_export_follows_the_target_filter(
    signed_in: Client, project: Project, keys: tuple[ApiKey, ApiKey]
) -> None:
    leaked, _ = keys
    url = reverse("accounts:project_audit_csv", args=[project.slug])
    response: Any = signed_in.get(url, {"target": f"apikey:{leaked.pk}"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 1 + 3


def test_the_keys_usage_page_links_its_audit_trail(
    signed_in: Client, project: Project, keys: tuple[ApiKey, ApiKey]
) -> None:
    leaked, _ = keys
    page = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, leaked.pk]))
    assert f"{audit_url(project)}?target=apikey%3A{leaked.pk}" in page.content.decode()


@pytest.mark.parametrize(
    "target",
    [
        "apikey:²",
        "apikey:0",
        "apikey:-1",
        "apikey:99999999999999999999",
        "apikey:١",
        "ApiKey:1",
        "apikey:1\x00",
        "user:1",
        "apikey",
        "apikey:",
        ":1",
        " apikey:1 x",
        "a" * 10_000,
    ],
)
def test_a_damaged_target_is_said_never_a_500(
    signed_in: Client, project: Project, keys: tuple[ApiKey, ApiKey], target: str
) -> None:
    response: Any = signed_in.get(audit_url(project), {"target": target})
    assert response.status_code == 400
    assert response.context["form"].cursor_errors
    assert "\x00" not in response.content.decode()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_targets_events_are_walked_in_order_from_an_index(
    project: Project, keys: tuple[ApiKey, ApiKey]
) -> None:
    leaked, _ = keys
    AuditEvent.objects.bulk_create(
        AuditEvent(project=project, action="project.renamed", actor_email="g@example.com")
        for _ in range(500)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE accounts_auditevent")
    trail = AuditEvent.objects.for_project(project)
    page = AuditFilters(target=("apikey", leaked.pk)).apply(trail).order_by(*NEWEST_FIRST)
    assert_walks_an_index_in_order(page[: PAGE_SIZE + 1], "target_id")
