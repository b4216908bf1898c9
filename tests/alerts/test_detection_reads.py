"""The detector reads new rows bounded in time (so PostgreSQL reads only the recent
partitions) and still reads every row exactly once, late-written batches included."""

from __future__ import annotations

import json
from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts.detection import READ_MARGIN, detect, unread_rows
from alerts.models import DetectionCursor, Flag, KeyNetwork
from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage.models import LateUsage, UsageRecord
from usage.retention import usage_partitions_ensure
from usage.writer import LATE_AFTER, usage_write

pytestmark = pytest.mark.django_db


@pytest.fixture
def revoked(api_key) -> ApiKey:
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=timezone.now() - timedelta(days=30))
    key.refresh_from_db()
    key.revoke(by=None)
    return key


def tried(key: ApiKey, ago: timedelta) -> None:
    """One call with the revoked key, made `ago` before now, written now."""
    usage_write(
        [usage_call(timezone.now() - ago, key=key, status=401, error_code="expired_api_key")]
    )


def attempts_read() -> int:
    """Each call read adds one occurrence to the key's ended-token flag."""
    return sum(Flag.objects.values_list("occurrences", flat=True))


def test_a_batch_written_days_after_its_calls_is_read_once_after_recent_reads(revoked):
    tried(revoked, timedelta(minutes=1))
    detect()
    tried(revoked, timedelta(days=3))  # an ingest catching up after an outage
    tried(revoked, timedelta(seconds=5))
    detect()
    detect()
    assert attempts_read() == 3


def test_a_call_stamped_hours_ahead_by_a_skewed_clock_is_read_once(revoked):
    tried(revoked, timedelta(minutes=1))
    detect()
    tried(revoked, -timedelta(hours=3))
    detect()
    detect()
    assert attempts_read() == 2


def test_a_late_batch_is_noted_until_the_detector_reads_past_it(revoked):
    tried(revoked, timedelta(seconds=1))
    assert not LateUsage.objects.exists()  # written in time: nothing to note
    tried(revoked, LATE_AFTER + timedelta(minutes=1))
    [note] = LateUsage.objects.all()
    assert note.last_id >= UsageRecord.objects.latest("id").pk
    detect()
    assert not LateUsage.objects.exists()


def test_rows_written_in_time_are_read_without_reaching_back_past_the_window(revoked):
    tried(revoked, timedelta(seconds=30))
    detect()
    tried(revoked, timedelta(seconds=10))
    cursor = DetectionCursor.objects.get()
    since = unread_rows(cursor).query.where
    assert "created_at" in str(since)
    assert unread_rows(cursor).count() == 1
    assert not unread_rows(cursor).filter(created_at__lt=cursor.updated_at - READ_MARGIN).exists()


def test_a_new_cursor_reads_the_whole_log(revoked):
    tried(revoked, timedelta(days=40))
    tried(revoked, timedelta(days=2))
    LateUsage.objects.all().delete()  # even without the writer's notes
    detect()
    assert attempts_read() == 2


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="only PostgreSQL partitions the log by day"
)
def test_reading_a_minutes_new_rows_touches_only_the_recent_partitions(revoked):
    today = timezone.now().astimezone(UTC).date()
    usage_partitions_ensure(start_day=today - timedelta(days=20), end_day=today + timedelta(days=2))
    tried(revoked, timedelta(minutes=2))
    detect()
    tried(revoked, timedelta(seconds=3))
    query, params = (
        unread_rows(DetectionCursor.objects.get()).order_by("id").query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {query}", params)
        plan = cursor.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    scanned = set()

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            scanned.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    # Today's partition, and yesterday's when the read reaches back past midnight.
    assert 1 <= len(scanned) <= 2, scanned
    assert all(name.startswith("apikeys_usagerecord_p") for name in scanned), scanned


@pytest.mark.parametrize("per_read", [1, 1000])
def test_a_key_used_from_many_networks_is_read_only_for_the_networks_of_the_batch(
    api_key, monkeypatch, per_read
):
    """A key's known networks have no bound: a run reads those its new calls came from,
    not every one the key was ever used from, and still tells a new network apart."""
    monkeypatch.setattr("alerts.learnt.VALUES_PER_READ", per_read)
    key, _ = api_key
    long_ago = timezone.now() - timedelta(days=30)
    KeyNetwork.objects.bulk_create(
        KeyNetwork(api_key=key, network=f"2001:db8:{n:x}::/48", first_seen=long_ago)
        for n in range(2000)
    )
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(seconds=3), key=key, ip="2001:db8:7::1"),  # known
            usage_call(now - timedelta(seconds=2), key=key, ip="203.0.113.9"),  # new
        ]
    )
    with CaptureQueriesContext(connection) as queries:
        detect()
    reads = [
        q["sql"] for q in queries.captured_queries
        if "apikeys_keynetwork" in q["sql"] and q["sql"].lstrip().startswith("SELECT")
    ]  # fmt: skip
    assert reads and all(" IN (" in sql and "MIN(" not in sql or "MIN(" in sql for sql in reads)
    assert all("MIN(" in sql or '"network" IN' in sql for sql in reads)
    [flag] = Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK)
    assert flag.evidence["network"] == "203.0.113.0/24"
