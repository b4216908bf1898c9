"""A mail server that is down for everyone: each send to it waited EMAIL_TIMEOUT, once per
address with mail owed, and the detector's next run (every tenant's new alerts) and the
expiry reminders waited for them all. A run's sends now take MAIL_RUN_BUDGET_SECONDS at
most; the rest stay owed, unclaimed, and the next run starts where this one stopped."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Project
from alerts import detection
from alerts.detection import detect
from alerts.models import Flag
from apikeys import reminders
from apikeys.models import ApiKey
from apikeys.reminders import send_expiry_reminders
from apikeys.services import api_key_create
from notifications import recipients
from tests.alerts.test_detection_isolation import NOW, revoked_key_tried
from usage.writer import usage_write

HANG = 10  # what a send waits before it times out: EMAIL_TIMEOUT
TENANTS = 6


class Clock:
    """The time module as the mail run sees it: it moves only when a send sleeps, so a
    test of a budget of seconds takes none, and a loaded machine cannot move it."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class DownMailServer:
    """A fake mail backend: each send waits `hang` seconds, then fails with `error`."""

    def __init__(self, clock: Clock, *, hang: float, error: type[Exception]) -> None:
        self.clock, self.hang, self.error = clock, hang, error
        self.tried: list[str] = []

    def __call__(self, **kwargs) -> int:
        [address] = kwargs["recipient_list"]
        self.tried.append(address)
        self.clock.sleep(self.hang)
        raise self.error("the mail server did not answer")


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(recipients, "time", clock, raising=False)
    return clock


@pytest.fixture
def budget(settings, clock):
    # Room for two hanging sends and half a third: the third spends it.
    settings.MAIL_RUN_BUDGET_SECONDS = HANG * 2.5
    return settings.MAIL_RUN_BUDGET_SECONDS


def owners(make_user, n: int) -> list[Project]:
    return [
        Project.objects.for_user(make_user(email=f"owner-{i}@example.com")).get() for i in range(n)
    ]


@pytest.fixture
def alert_in_each_tenant(make_user, make_key):
    keys = [make_key(project, name="Old")[0] for project in owners(make_user, TENANTS)]
    for key in keys:
        key.revoke(by=None)
    usage_write([revoked_key_tried(key) for key in keys])
    return keys


def test_the_detector_stops_emailing_once_its_budget_is_spent_and_owes_the_rest(
    alert_in_each_tenant, budget, clock, monkeypatch, caplog
):
    server = DownMailServer(clock, hang=HANG, error=TimeoutError)
    monkeypatch.setattr(detection.emails, "send_mail", server)
    with caplog.at_level(logging.WARNING):
        detect(now=NOW)

    assert len(server.tried) == 3  # the third took the run past its budget
    assert Flag.objects.filter(emailed_at__isnull=True).count() == TENANTS  # all still owed
    [owed] = [r for r in caplog.records if "stay owed" in r.getMessage()]
    assert "3 emails" in owed.getMessage()


def test_the_next_run_starts_where_the_last_stopped_so_hanging_addresses_starve_nobody(
    alert_in_each_tenant, budget, clock, monkeypatch
):
    """Oldest first every run, the same three hanging addresses took every run's budget
    and the other tenants' alerts were never emailed."""
    server = DownMailServer(clock, hang=HANG, error=TimeoutError)
    monkeypatch.setattr(detection.emails, "send_mail", server)
    detect(now=NOW)
    first = list(server.tried)
    server.tried.clear()
    detect(now=NOW + timedelta(minutes=1))
    assert len(server.tried) == 3
    assert set(first) | set(server.tried) == {f"owner-{i}@example.com" for i in range(TENANTS)}


def test_a_server_that_refuses_at_once_costs_the_budget_nothing(
    alert_in_each_tenant, budget, clock, monkeypatch
):
    server = DownMailServer(clock, hang=0, error=ConnectionRefusedError)
    monkeypatch.setattr(detection.emails, "send_mail", server)
    result = detect(now=NOW)
    assert len(server.tried) == TENANTS  # every email was tried; each is owed again
    assert result.failures == TENANTS


@pytest.mark.django_db
def test_expiry_reminders_stop_once_the_budget_is_spent_and_go_round(
    make_user, budget, clock, monkeypatch, caplog
):
    soon = timezone.now() + timedelta(days=3)
    for project in owners(make_user, TENANTS):
        owner = project.memberships.get().user
        api_key_create(project=project, name="Deploy", created_by=owner, expires_at=soon)
    server = DownMailServer(clock, hang=HANG, error=TimeoutError)
    monkeypatch.setattr(reminders, "send_mail", server)

    with caplog.at_level(logging.WARNING):
        first = send_expiry_reminders()
    assert len(server.tried) == 3
    assert (first.sent, first.skipped) == (0, TENANTS)
    assert not ApiKey.objects.filter(expiry_week_reminder_sent_at__isnull=False).exists()
    assert [r for r in caplog.records if "3 emails stay owed" in r.getMessage()]

    tried_first = set(server.tried)
    server.tried.clear()
    send_expiry_reminders()
    assert len(server.tried) == 3 and not tried_first & set(server.tried)


class SlowMailServer:
    """A fake mail backend that works, each send taking `takes` seconds of the clock."""

    def __init__(self, clock: Clock, *, takes: float) -> None:
        self.clock, self.takes = clock, takes
        self.sent: list[str] = []

    def __call__(self, **kwargs) -> int:
        [address] = kwargs["recipient_list"]
        self.clock.sleep(self.takes)
        self.sent.append(address)
        return 1


@pytest.mark.django_db
def test_one_tenants_ten_thousand_reminders_do_not_hold_back_anothers_past_one_run(
    make_user, budget, clock, monkeypatch
):
    """The run went round the emails by id: a project with 10,000 keys expiring this week
    (made before the other's one) took every run's budget, three emails a run here, and
    the other project's owner heard of their key 3,334 runs (hours) later. A run now
    takes one email of each tenant in turn."""
    soon = timezone.now() + timedelta(days=3)
    big, small = owners(make_user, 2)
    big_owner, small_owner = (p.memberships.get().user for p in (big, small))
    first, _ = api_key_create(project=big, name="Key 0", created_by=big_owner, expires_at=soon)
    copies_of(first, 9_999)
    api_key_create(project=small, name="Deploy", created_by=small_owner, expires_at=soon)
    server = SlowMailServer(clock, takes=HANG)
    monkeypatch.setattr(reminders, "send_mail", server)

    result = send_expiry_reminders()

    assert "owner-1@example.com" in server.sent
    assert result.sent == 3
    assert result.skipped == 10_001 - 3
    assert ApiKey.objects.filter(expiry_week_reminder_sent_at__isnull=True).count() == 9_998


def copies_of(key: ApiKey, n: int) -> None:
    """`n` more keys of `key`'s project as it is, named `Key 1`… (one statement: made a
    row at a time, 10,000 took most of the test's time)."""
    q = connection.ops.quote_name
    kept = [
        f.column
        for f in ApiKey._meta.concrete_fields
        if f.column not in ("id", "name", "token_hash")
    ]
    columns = ", ".join(q(c) for c in kept)
    table = q(ApiKey._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %s) "
            f"INSERT INTO {table} (name, token_hash, {columns}) "  # noqa: S608
            f"SELECT 'Key ' || n.i, 'copy-' || n.i, {columns} FROM {table}, n WHERE id = %s",
            [n, key.pk],
        )
