"""The migration that fills the project overview's roll-ups from an existing log fills
exactly what the writer would have kept (SQL on PostgreSQL, Python on SQLite)."""

from __future__ import annotations

import importlib
import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import connection

from apikeys.services import client_token_create, personal_token_create
from tests.conftest import usage_call
from usage.models import ProjectAddressDay, ProjectAddressHour, ProjectUsageDay, ProjectUsageHour
from usage.writer import usage_write

pytestmark = pytest.mark.django_db

ROLLUPS = (ProjectUsageHour, ProjectUsageDay, ProjectAddressHour, ProjectAddressDay)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _contents(model: type) -> set[tuple[object, ...]]:
    fields = [f.attname for f in model._meta.concrete_fields if not f.primary_key]
    return set(model.objects.values_list(*fields))


def test_the_backfill_fills_what_the_writer_keeps(project, make_key, user):
    key, _ = make_key(project)
    token, _ = client_token_create(project=project, context={}, api_key=key)
    pat, _ = personal_token_create(user=user, name="CLI")
    rng = random.Random(3)
    entries = [
        usage_call(
            NOW - timedelta(seconds=rng.randrange(3 * 24 * 3600)),
            **rng.choice([{"key": key}, {"client_token": token}, {"pat": pat, "project": project}]),
            status=rng.choice([200, 200, 401, 500]),
            error_code=rng.choice(["", "expired_api_key"]),
            ip=rng.choice(["10.0.0.1", "2001:db8::1", None]),
            agent=rng.choice(["my-agent", ""]),
        )
        for _ in range(300)
    ]
    usage_write(entries)
    kept = {model: _contents(model) for model in ROLLUPS}
    assert all(kept.values())
    for model in ROLLUPS:
        model.objects.all().delete()

    migration = importlib.import_module("usage.migrations.0007_project_rollups_backfill")
    migration.backfill(apps, SimpleNamespace(connection=connection))

    assert {model: _contents(model) for model in ROLLUPS} == kept
