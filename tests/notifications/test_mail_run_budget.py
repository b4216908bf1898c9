"""A mail server that is down for everyone: each send to it waited EMAIL_TIMEOUT, once per
address with mail owed, and the detector's next run (every tenant's new alerts) and the
expiry reminders waited for them all. A run's sends now take MAIL_RUN_BUDGET_SECONDS at
most; the rest stay owed, unclaimed, and the next run starts where this one stopped."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
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
