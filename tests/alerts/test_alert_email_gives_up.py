"""An alert email that reaches nobody (every recipient refused or unanswered) was given
back and tried again by every detection run, a warning logged each time, for the day a
flag is emailed within (a run a minute: 1,440 tries and warnings). It is now tried again
after growing waits (every three hours at last), and given up after EMAIL_ATTEMPTS,
logged once; the alert stays open on the Alerts page, and other projects' emails go on."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core import mail
from django.urls import reverse

from alerts import detection
from alerts.detection import detect
from alerts.detection.emails import EMAIL_ATTEMPTS, EMAIL_RETRY_WAITS
from alerts.models import Flag
from tests.alerts.test_detection_isolation import NOW, revoked_key_tried, two_tenants  # noqa: F401
from usage.writer import usage_write


def test_an_email_that_reaches_nobody_is_given_up_once_and_the_alert_stays_open(
    two_tenants,  # noqa: F811
    signed_in,
    monkeypatch,
    caplog,
):
    mine, theirs = two_tenants
    real_send = detection.emails.send_mail
    tried: list[str] = []

    def refuses_mine(**kwargs):
        if mine.project.name in kwargs["subject"]:
            tried.append(kwargs["recipient_list"][0])
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(detection.emails, "send_mail", refuses_mine)
    usage_write([revoked_key_tried(mine)])
    when = NOW
    with caplog.at_level(logging.INFO, logger="alerts.detection.emails"):
        # A run every ten minutes for the day a flag is emailed within, with the other
        # project's alert coming in meanwhile.
        for minute in range(0, 24 * 60, 10):
            when = NOW + timedelta(minutes=minute)
            if minute == 12 * 60:
                usage_write([revoked_key_tried(theirs, minutes_ago=-minute)])
                theirs_raised = when
            detect(now=when)

    assert len(tried) == EMAIL_ATTEMPTS
    given_up = [
        r
        for r in caplog.records
        if r.name == "alerts.detection.emails" and r.levelno >= logging.WARNING
    ]
    assert len(given_up) == 1 and "gave up" in given_up[0].getMessage()
    flag = Flag.objects.get(api_key=mine)
    assert flag.emailed_at is None and flag.acknowledged_at is None
    assert flag.email_attempts == EMAIL_ATTEMPTS
    # The other project's alert was emailed at once, the first run after it came in.
    assert [m.to for m in mail.outbox] == [["other-owner@example.com"]]
    assert Flag.objects.get(api_key=theirs).emailed_at == theirs_raised
    page = signed_in.get(reverse("alerts:flag_list", kwargs={"slug": mine.project.slug}))
    assert f'id="flag-{flag.pk}"' in page.content.decode()


def test_an_email_that_reaches_nobody_waits_longer_each_time_then_is_sent(
    two_tenants,  # noqa: F811
    monkeypatch,
):
    mine, _ = two_tenants
    real_send = detection.emails.send_mail
    down = True

    def refuses_while_down(**kwargs):
        if down:
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(detection.emails, "send_mail", refuses_while_down)
    usage_write([revoked_key_tried(mine)])
    detect(now=NOW)  # the first try
    when = NOW
    for wait in EMAIL_RETRY_WAITS[:2]:
        assert Flag.objects.get().email_attempts == EMAIL_RETRY_WAITS.index(wait) + 1
        if wait:
            detect(now=when + wait - timedelta(seconds=1))  # too early: not tried
            assert Flag.objects.get().email_attempts == EMAIL_RETRY_WAITS.index(wait) + 1
        when += wait
        detect(now=when)
    down = False
    when += EMAIL_RETRY_WAITS[2]
    assert detect(now=when).emails == 1
    assert Flag.objects.get().emailed_at == when and len(mail.outbox) == 1


def test_a_mail_server_down_for_half_a_day_still_delivers_the_alert(
    two_tenants,  # noqa: F811
    monkeypatch,
):
    """The tries are spaced, not cut short: a mail server down from the alert's first
    minute for twelve hours (a credential expired overnight) still delivers it that day,
    as every run's try did before the waits."""
    mine, _ = two_tenants
    real_send = detection.emails.send_mail
    up_at = NOW + timedelta(hours=12)
    clock = {"now": NOW}

    def down_until_noon(**kwargs):
        if clock["now"] < up_at:
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(detection.emails, "send_mail", down_until_noon)
    usage_write([revoked_key_tried(mine)])
    for minute in range(0, 24 * 60, 10):
        clock["now"] = NOW + timedelta(minutes=minute)
        detect(now=clock["now"])
    flag = Flag.objects.get(api_key=mine)
    assert flag.emailed_at is not None and up_at <= flag.emailed_at <= up_at + timedelta(hours=3)
    assert [m.to for m in mail.outbox] == [[mine.project.memberships.get().user.email]]
