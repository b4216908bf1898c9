"""Every place where `make bench` reaches into the dashboard's own code, and only here.

The harness drives the dashboard from outside (HTTP, management commands) wherever it
can. What it cannot do that way (count usage rows, seed a month of them, make a session,
run the detector in-process) needs the app's models and functions. They are looked up
through HOMES below and nowhere else, so that when app code moves, re-pointing HOMES is
the whole change. The URL of a key's usage page and the management commands
(createsuperuser, createproject, createapikey) are part of the same contract and are
named here too.

Call django_setup() before anything else in this module.
"""

from __future__ import annotations

import importlib
import io
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import Max, Sum
from django.utils import timezone
from seed import seed_usage

ROOT = Path(__file__).resolve().parent.parent

# Where each piece of the dashboard that the bench uses lives: name -> module.
HOMES: dict[str, str] = {
    "ApiKey": "apikeys.models",
    "UsageRecord": "usage.models",
    "UsageHour": "usage.models",
    "UsageIp": "usage.models",
    "ProjectUsageHour": "usage.models",
    "ProjectUsageDay": "usage.models",
    "ProjectAddressHour": "usage.models",
    "ProjectAddressDay": "usage.models",
    "usage_partitions_ensure": "usage.retention",
    "DetectionCursor": "alerts.models",
    "Execution": "agents.models",
    "detect": "alerts.detection",
    # The scale stage (benchmarks/usage_scale.py).
    "Project": "accounts.models",
    "ClientToken": "apikeys.models",
    "client_token_create": "apikeys.services",
    "personal_token_create": "apikeys.services",
    "usage_partitions": "usage.retention",
    "unread_rows": "alerts.detection",
    "FIELDS": "alerts.detection",
    "BATCH_SIZE": "alerts.detection",
}


def app(name: str) -> Any:
    """The dashboard's `name`, imported from where HOMES says it lives."""
    return getattr(importlib.import_module(HOMES[name]), name)


OWNER_EMAIL = "bench@example.com"


def django_setup(env: dict[str, str]) -> None:
    """Django in this process, with the server's settings (the same database)."""
    sys.path.insert(1, str(ROOT))  # after benchmarks/, so the app's modules import
    os.environ.update(env)
    if "REDIS_URL" not in env:  # --no-redis: not this shell's, if it has one
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()


def usage_page_path(slug: str, key_id: int) -> str:
    """The usage page of one API key, as the dashboard's URLconf has it."""
    return f"/projects/{slug}/settings/api-keys/{key_id}/usage/"


def _manage(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip()


def ingest_pending() -> str:
    """Write what waits on the usage stream (a stopped server's last calls), as the next
    `make serve`'s ingest would."""
    return _manage("ingest_usage", "--once")


@dataclass(frozen=True)
class Fixture:
    """What the run made in the dashboard's database: an owner, a project, two keys."""

    slug: str
    load_key: str  # the secret the load sends
    load_key_id: int
    probe_key: str  # the secret of the execution-log lag probe (benchmarks/lag_probe.py)
    usage_key_id: int  # the key the million rows are seeded for
    user_id: int
    project_id: int


def create_fixture() -> Fixture:
    """Migrate, then make the owner, the project and its keys with the management
    commands a deploy script would use, so the fixture is made the supported way."""
    call_command("migrate", verbosity=0, interactive=False)
    os.environ["DJANGO_SUPERUSER_PASSWORD"] = secrets.token_urlsafe(16)
    _manage("createsuperuser", "--noinput", "--email", OWNER_EMAIL)
    slug = _manage("createproject", "--owner", OWNER_EMAIL, "Bench")
    load_key = _manage("createapikey", "--project", slug, "--name", "load")
    probe_key = _manage("createapikey", "--project", slug, "--name", "probe")
    # The seeded key may not deploy agents: its log has 403s for PUTs, as a real one would.
    _manage("createapikey", "--project", slug, "--name", "seeded", "--permissions", "agents,read")
    keys = {k.name: k for k in app("ApiKey").objects.filter(project__slug=slug)}
    user = get_user_model().objects.get(email=OWNER_EMAIL)
    return Fixture(
        slug=slug,
        load_key=load_key,
        load_key_id=keys["load"].pk,
        probe_key=probe_key,
        usage_key_id=keys["seeded"].pk,
        user_id=user.pk,
        project_id=keys["load"].project_id,
    )


def usage_counts(key_id: int) -> tuple[int, int]:
    """(usage log rows, the hourly roll-up's request total) for one key."""
    rows = app("UsageRecord").objects.filter(api_key_id=key_id).count()
    rolled = (
        app("UsageHour").objects.filter(api_key_id=key_id).aggregate(n=Sum("requests"))["n"] or 0
    )
    return rows, rolled


def seed(fixture: Fixture, rows: int) -> dict[str, Any]:
    """A month of the seeded key's calls (benchmarks/seed.py), then VACUUM ANALYZE."""
    record = app("UsageRecord")
    tables = {**usage_tables(), "key": app("ApiKey")._meta.db_table}
    # The seeded month gets its daily partitions first (PostgreSQL), as a month of real
    # traffic would have, instead of piling into the default partition.
    today = timezone.now().date()
    app("usage_partitions_ensure")(
        start_day=today - timedelta(days=32), end_day=today + timedelta(days=1)
    )

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The app's statement timeout guards requests; the bench's one big seeding
            # INSERT is not one (10^6 rows took over 30 s on a busy 2-core machine).
            cursor.execute("SET LOCAL statement_timeout = 0")
        fields = [
            (f.column, f.null, f.get_default())
            for f in record._meta.concrete_fields
            if not f.primary_key
        ]
        figures = seed_usage(
            cursor,
            fields=fields,
            tables=tables,
            project_id=fixture.project_id,
            api_key_id=fixture.usage_key_id,
            rows=rows,
        )
    written = time.perf_counter() - started
    # A table that has lived a month has been vacuumed and analysed by autovacuum; one
    # written a second ago has not, and would mislead the planner and the timing.
    with connection.cursor() as cursor:
        for table in tables.values():
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return {
        **figures,
        "write_seconds": written,
        "vacuum_seconds": time.perf_counter() - started - written,
    }


def detect_everything() -> tuple[int, int]:
    """Run the suspicious-activity detector over the whole log from its start, as
    `manage.py detect_suspicious_activity` would on a fresh install: (rows read, alerts)."""
    app("DetectionCursor").objects.all().delete()
    result = app("detect")(now=timezone.now() + timedelta(minutes=1))
    return result.rows, result.flags_raised


def signed_in_cookie(user_id: int) -> str:
    """A session for the user, made the way django.contrib.auth.login makes one."""
    user = get_user_model().objects.get(pk=user_id)
    store = importlib.import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


# -- The scale stage (benchmarks/usage_scale.py) -------------------------------------------


def collect_static() -> None:
    """What `make serve` does first: the in-process pages need the static manifest."""
    _manage("collectstatic", "--noinput", "--verbosity", "0")


def now() -> Any:
    return timezone.now()


def make_project(fixture: Fixture, name: str) -> int:
    slug = _manage("createproject", "--owner", OWNER_EMAIL, name)
    return int(app("Project").objects.get(slug=slug).pk)


def make_key(project_id: int, name: str, fixture: Fixture) -> int:
    slug = app("Project").objects.get(pk=project_id).slug
    _manage("createapikey", "--project", slug, "--name", name)
    return int(app("ApiKey").objects.get(project_id=project_id, name=name).pk)


def make_client_token(key_id: int, project_id: int) -> tuple[int, str]:
    """A client token minted by the key: (its id, its public id)."""
    key = app("ApiKey").objects.get(pk=key_id)
    token, _ = app("client_token_create")(project=key.project, context={}, api_key=key)
    return token.pk, token.public_id


def make_pat(fixture: Fixture, name: str, project_ids: list[int]) -> int:
    user = get_user_model().objects.get(pk=fixture.user_id)
    projects = list(app("Project").objects.filter(pk__in=project_ids))
    token, _ = app("personal_token_create")(user=user, name=name, projects=projects)
    return int(token.pk)


def usage_tables() -> dict[str, str]:
    return {
        "record": app("UsageRecord")._meta.db_table,
        "hour": app("UsageHour")._meta.db_table,
        "ip": app("UsageIp")._meta.db_table,
        "project_calls_hour": app("ProjectUsageHour")._meta.db_table,
        "project_calls_day": app("ProjectUsageDay")._meta.db_table,
        "project_addresses_hour": app("ProjectAddressHour")._meta.db_table,
        "project_addresses_day": app("ProjectAddressDay")._meta.db_table,
    }


def ensure_partitions(days: int) -> None:
    today = timezone.now().date()
    app("usage_partitions_ensure")(
        start_day=today - timedelta(days=days), end_day=today + timedelta(days=14)
    )


def busiest_key() -> tuple[int, int]:
    """(key id, project id) of the key with the most calls, by its hourly roll-up."""
    row = (
        app("UsageHour")
        .objects.values("api_key_id", "project_id")
        .annotate(n=Sum("requests"))
        .order_by("-n")
        .first()
    )
    return row["api_key_id"], row["project_id"]


def project_slug(project_id: int) -> str:
    return str(app("Project").objects.get(pk=project_id).slug)


def project_rows(project_id: int) -> int:
    return int(app("UsageRecord").objects.filter(project_id=project_id).count())


def key_rows(key_id: int) -> int:
    return int(app("UsageRecord").objects.filter(api_key_id=key_id).count())


def addresses_of(key_id: int) -> tuple[str, str]:
    """The key's most used address and one it used least (by its address roll-up)."""
    ips = app("UsageIp").objects.filter(api_key_id=key_id)
    frequent = ips.order_by("-requests", "ip").values_list("ip", flat=True).first()
    rare = ips.order_by("requests", "ip").values_list("ip", flat=True).first()
    return str(frequent), str(rare)


def some_request_id(project_id: int) -> str:
    """A request id of a call of the project from about ten days ago."""
    record = app("UsageRecord").objects.filter(
        project_id=project_id, created_at__lt=timezone.now() - timedelta(days=10)
    )
    return str(record.order_by("-created_at").values_list("request_id", flat=True).first())


def detection_read_of_last_minute() -> tuple[str, Any, int]:
    """The detector's read (its SQL and parameters) with its cursor where a run a minute
    ago would have left it; and how many partitions the log has."""
    records = app("UsageRecord").objects
    newest = records.filter(created_at__gte=timezone.now() - timedelta(days=1)).aggregate(
        at=Max("created_at")
    )["at"]
    at = (newest or timezone.now()) - timedelta(minutes=1)
    last_id = records.filter(created_at__lt=at, created_at__gte=at - timedelta(hours=1)).aggregate(
        n=Max("id")
    )["n"]
    cursor = app("DetectionCursor")(name="usage", last_id=last_id or 0, updated_at=at)
    rows = app("unread_rows")(cursor).order_by("id").values(*app("FIELDS"))[: app("BATCH_SIZE")]
    query, params = rows.query.sql_with_params()
    return query, params, len(app("usage_partitions")())


def execution_table() -> tuple[str, str]:
    """(table, column) where an execution's id, as answers show it, is found."""
    model = app("Execution")
    return model._meta.db_table, model._meta.get_field("public_id").column
