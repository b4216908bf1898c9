"""A PAT's new-network notice that reaches nobody (its person's address refused or not
answered by the mail server) was given back and claimed again by every detection run for
the day its networks are told within: a run a minute, 1,440 tries, each with a traceback
in the log, a failure on the job's stderr (what cron mails) and a "new network" event in
the person's audit log, and with the mail server hanging on the address, a timeout of
every run's mail budget. As an alert's email (tests/alerts/test_alert_email_gives_up.py),
it is now tried again after growing waits and given up after the last, logged once;
another person's notice still goes at once."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core import mail

from alerts import token_networks
from alerts.detection import detect
from alerts.models import TokenNetwork
from alerts.token_networks import NOTICE_ATTEMPTS, NOTICE_RETRY_WAITS
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.alerts.test_detection_personal_networks import (  # noqa: F401
    NOW,
    call,
    pat,
    used_for_two_days,
)
from usage.writer import usage_write


def test_a_notice_that_reaches_nobody_is_given_up_once_and_others_still_go(
    pat,  # noqa: F811
    user,
    project,
    make_user,
    monkeypatch,
    caplog,
):
    used_for_two_days(pat, project)
    other = make_user(email="grace@example.com", name="Grace")
    theirs, _ = personal_token_create(user=other, name="CLI")
    usage_write([call(theirs, NOW - timedelta(days=2), "203.0.113.9")])
    detect(now=NOW)
    mail.outbox.clear()
    real_send = token_networks.send_mail
    tried: list[str] = []

    def refuses_ada(**kwargs):
        if kwargs["recipient_list"] == [user.email]:
            tried.append(user.email)
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(token_networks, "send_mail", refuses_ada)
    usage_write([call(pat, NOW + timedelta(minutes=1), "198.51.100.7")])
    failures = 0
    with caplog.at_level(logging.INFO, logger="alerts.token_networks"):
        # A run every ten minutes for the day a new network is told within, Grace's token
        # used from a new network halfway through.
        for minute in range(2, 24 * 60, 10):
            when = NOW + timedelta(minutes=minute)
            if minute == 12 * 60 + 2:
                usage_write([call(theirs, when - timedelta(seconds=30), "198.51.100.7")])
            failures += detect(now=when).failures
            if minute == 12 * 60 + 2:  # told at once
                assert [m.to for m in mail.outbox] == [[other.email]]

    assert len(tried) == NOTICE_ATTEMPTS
    assert failures == NOTICE_ATTEMPTS
    logged = [r for r in caplog.records if r.name == "alerts.token_networks"]
    assert len([r for r in logged if r.levelno >= logging.WARNING]) == 1
    assert "gave up" in logged[-1].getMessage() and logged[-1].exc_info is None
    told = AuditEvent.objects.filter(action="personal_token.new_network", target_id=str(pat.pk))
    assert told.count() == NOTICE_ATTEMPTS
    network = TokenNetwork.objects.get(personal_token=pat, new=True)
    assert network.noticed_at is None and network.notice_attempts == NOTICE_ATTEMPTS


def test_a_notice_that_reaches_nobody_waits_longer_each_time_then_is_sent(
    pat,  # noqa: F811
    user,
    project,
    monkeypatch,
):
    used_for_two_days(pat, project)
    mail.outbox.clear()
    real_send = token_networks.send_mail
    down = True

    def refuses_while_down(**kwargs):
        if down:
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(token_networks, "send_mail", refuses_while_down)
    usage_write([call(pat, NOW + timedelta(minutes=1), "198.51.100.7")])
    when = NOW + timedelta(minutes=2)
    detect(now=when)  # the first try
    for tries, wait in enumerate(NOTICE_RETRY_WAITS[:3], start=1):
        network = TokenNetwork.objects.get(personal_token=pat, new=True)
        assert network.notice_attempts == tries and network.noticed_at is None
        if wait:
            detect(now=when + wait - timedelta(seconds=1))  # too early: not tried
            assert TokenNetwork.objects.get(pk=network.pk).notice_attempts == tries
        when += wait
        detect(now=when)
    down = False
    when += NOTICE_RETRY_WAITS[3]
    assert detect(now=when).notices == 1
    assert [m.to for m in mail.outbox] == [[user.email]]
    assert TokenNetwork.objects.get(personal_token=pat, new=True).noticed_at == when
