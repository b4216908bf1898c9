"""A personal access token used from a network it never used, after its first day of use,
sends its person one security notice (at most one per token per hour), recorded in their
audit log; alerts are a project's, and a PAT is its person's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from alerts.detection import detect
from alerts.models import Flag, TokenNetwork
from apikeys.models import PersonalAccessToken
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.conftest import usage_call
from usage.models import UsageRecord
from usage.writer import usage_write

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def pat(user, project) -> PersonalAccessToken:
    token, _ = personal_token_create(user=user, name="Deploy")
    # Saved before names were checked: it must still make one header line.
    PersonalAccessToken.objects.filter(pk=token.pk).update(name="Deploy\nBcc: x@evil.example")
    token.refresh_from_db()
    mail.outbox.clear()  # its "created" notice
    return token


def call(pat: PersonalAccessToken, at: datetime, ip: str, **fields: Any):
    return usage_call(at, pat=pat, ip=ip, **fields)


def used_for_two_days(pat: PersonalAccessToken, project) -> None:
    """Its own network for two days, with and without a project named."""
    usage_write(
        [call(pat, NOW - timedelta(days=2, minutes=m), "203.0.113.9", project=project)
         for m in range(3)]
        + [call(pat, NOW - timedelta(hours=1), "203.0.113.10")]
    )  # fmt: skip
    detect(now=NOW)


def test_a_pat_used_from_a_new_network_tells_its_person_once(pat, user, project):
    used_for_two_days(pat, project)
    assert mail.outbox == []
    usage_write(
        [call(pat, NOW + timedelta(minutes=1), "198.51.100.7", project=project),
         call(pat, NOW + timedelta(minutes=2), "198.51.100.8"),
         call(pat, NOW + timedelta(minutes=3), "192.0.2.44")]
    )  # fmt: skip
    detect(now=NOW + timedelta(minutes=5))

    assert len(mail.outbox) == 1
    sent = mail.outbox[0]
    assert sent.to == [user.email]
    assert "\n" not in sent.subject and "Deploy" in sent.subject
    assert "198.51.100.0/24 (198.51.100.7)" in sent.body
    assert "192.0.2.0/24 (192.0.2.44)" in sent.body
    assert pat.hint in sent.body
    assert reverse("usage:personal_token_usage", kwargs={"token_id": pat.pk}) in sent.body
    assert reverse("apikeys:personal_token_networks", kwargs={"token_id": pat.pk}) in sent.body
    assert reverse("apikeys:personal_token_list") in sent.body
    event = AuditEvent.objects.get(action="personal_token.new_network")
    assert event.target_id == str(pat.pk) and event.actor_id == user.pk
    assert event.metadata["networks"] == ["198.51.100.0/24", "192.0.2.0/24"]
    assert Flag.objects.count() == 0  # a person's matter, no project's alert

    detect(now=NOW + timedelta(minutes=6))  # nothing new: nothing sent again
    assert len(mail.outbox) == 1


def test_a_name_saved_with_a_line_break_stays_on_the_notices_line(pat, user, project):
    """As the alert's: the subject made the name one line, but the body kept its break,
    so the name could write a line of its own into the notice."""
    used_for_two_days(pat, project)
    usage_write([call(pat, NOW + timedelta(minutes=1), "198.51.100.7", project=project)])
    detect(now=NOW + timedelta(minutes=5))
    (sent,) = mail.outbox
    assert "\nBcc:" not in sent.body and "“Deploy Bcc: x@evil.example”" in sent.body


def test_new_networks_in_a_pats_first_day_are_learnt_not_told(pat, project):
    usage_write(
        [call(pat, NOW - timedelta(hours=5), "203.0.113.9", project=project),
         call(pat, NOW - timedelta(hours=1), "198.51.100.7", project=project)]
    )  # fmt: skip
    detect(now=NOW)
    assert mail.outbox == []
    assert set(TokenNetwork.objects.values_list("network", flat=True)) == {
        "203.0.113.0/24",
        "198.51.100.0/24",
    }


def test_at_most_one_notice_per_pat_per_hour_the_held_networks_follow(pat, project):
    used_for_two_days(pat, project)
    usage_write([call(pat, NOW + timedelta(minutes=1), "198.51.100.7")])
    detect(now=NOW + timedelta(minutes=2))
    usage_write([call(pat, NOW + timedelta(minutes=10), "192.0.2.44")])
    detect(now=NOW + timedelta(minutes=11))
    assert len(mail.outbox) == 1

    detect(now=NOW + timedelta(minutes=63))
    assert len(mail.outbox) == 2
    assert "192.0.2.0/24" in mail.outbox[1].body
    assert "198.51.100.0/24" not in mail.outbox[1].body


def test_a_revoked_pat_or_a_deactivated_persons_sends_nothing(pat, user, project, make_user):
    used_for_two_days(pat, project)
    PersonalAccessToken.objects.filter(pk=pat.pk).update(revoked_at=timezone.now())
    other = make_user(email="grace@example.com", name="Grace")
    theirs, _ = personal_token_create(user=other, name="CLI")
    usage_write([call(theirs, NOW - timedelta(days=2), "203.0.113.9")])
    detect(now=NOW)
    type(other).objects.filter(pk=other.pk).update(is_active=False)
    mail.outbox.clear()
    usage_write(
        [call(pat, NOW + timedelta(minutes=1), "198.51.100.7"),
         call(theirs, NOW + timedelta(minutes=1), "198.51.100.7")]
    )  # fmt: skip
    detect(now=NOW + timedelta(minutes=2))
    assert mail.outbox == []
    assert not AuditEvent.objects.filter(action="personal_token.new_network").exists()


def test_a_notice_that_fails_stops_no_one_elses(pat, user, project, make_user, monkeypatch):
    used_for_two_days(pat, project)
    other = make_user(email="grace@example.com", name="Grace")
    theirs, _ = personal_token_create(user=other, name="CLI")
    usage_write([call(theirs, NOW - timedelta(days=2), "203.0.113.9")])
    detect(now=NOW)
    mail.outbox.clear()
    from django.core.mail.backends.locmem import EmailBackend

    real = EmailBackend.send_messages

    def failing_for_ada(self, messages):
        if any(user.email in m.to for m in messages):
            raise OSError("mail server down")
        return real(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", failing_for_ada)
    usage_write(
        [call(pat, NOW + timedelta(minutes=1), "198.51.100.7"),
         call(theirs, NOW + timedelta(minutes=1), "198.51.100.7")]
    )  # fmt: skip
    result = detect(now=NOW + timedelta(minutes=2))
    assert [m.to for m in mail.outbox] == [[other.email]]
    assert result.failures == 1
    monkeypatch.setattr(EmailBackend, "send_messages", real)
    detect(now=NOW + timedelta(minutes=3))  # given back: the next run sends it
    assert [m.to for m in mail.outbox] == [[other.email], [user.email]]


def test_each_pat_calls_network_is_worked_out_once(pat, project, monkeypatch):
    """Working out a network is most of learning one, and every PAT call the detector
    reads needs its own: the set it looks up and the networks it learns are the same."""
    from alerts import token_networks

    asked: list[str] = []
    real = token_networks.network_around

    def network_around(address: str) -> str:
        asked.append(address)
        return real(address)

    monkeypatch.setattr(token_networks, "network_around", network_around)
    ips = ["203.0.113.9", "203.0.113.10", "2001:db8:7::1", "::ffff:198.51.100.7"]
    usage_write([call(pat, NOW - timedelta(minutes=5), ip, project=project) for ip in ips])
    detect(now=NOW)
    logged = UsageRecord.objects.values_list("ip", flat=True)
    assert sorted(asked) == sorted(str(ip) for ip in logged)  # each call's once
    assert set(TokenNetwork.objects.values_list("network", "first_ip")) == {
        ("203.0.113.0/24", "203.0.113.9"),
        ("2001:db8:7::/48", "2001:db8:7::1"),
        ("198.51.100.0/24", "::ffff:198.51.100.7"),
    }


def test_a_pat_keeps_at_most_token_networks_kept_and_told_ones_make_room(
    pat, user, project, monkeypatch
):
    """A PAT's networks are also its notices' queue: past the memory, the oldest it was
    told of (over an hour ago) make room for new ones, so its person still hears of the
    next new network; its own first networks and those not yet told stay."""
    from alerts import token_networks

    monkeypatch.setattr(token_networks, "TOKEN_NETWORKS_KEPT", 3)
    used_for_two_days(pat, project)
    usage_write([call(pat, NOW + timedelta(minutes=m), f"198.51.{m}.7") for m in range(3)])
    detect(now=NOW + timedelta(minutes=5))
    assert set(TokenNetwork.objects.values_list("network", flat=True)) == {
        "203.0.113.0/24",
        "198.51.0.0/24",
        "198.51.1.0/24",
    }
    (first,) = mail.outbox
    assert "198.51.1.0/24" in first.body and "198.51.2.0/24" not in first.body

    usage_write([call(pat, NOW + timedelta(hours=2), "192.0.2.7")])
    detect(now=NOW + timedelta(hours=2, minutes=1))

    assert set(TokenNetwork.objects.values_list("network", flat=True)) == {
        "203.0.113.0/24",
        "198.51.1.0/24",
        "192.0.2.0/24",
    }
    assert len(mail.outbox) == 2 and "192.0.2.0/24" in mail.outbox[1].body


def test_learning_pat_networks_that_fails_stops_no_key_alert(pat, project, make_key, monkeypatch):
    from apikeys.models import ApiKey

    key, _ = make_key(project, name="Server")
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    usage_write([usage_call(NOW - timedelta(days=2), key=key, ip="203.0.113.9")])
    detect(now=NOW)

    def broken(rows, **_):
        raise ValueError("one odd row")

    monkeypatch.setattr("alerts.detection.run.token_networks_learn", broken)
    usage_write(
        [usage_call(NOW + timedelta(minutes=1), key=key, ip="198.51.100.7"),
         call(pat, NOW + timedelta(minutes=1), "198.51.100.7")]
    )  # fmt: skip
    result = detect(now=NOW + timedelta(minutes=2))
    assert result.failures == 1
    assert Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK, api_key=key).exists()


def test_notices_stop_once_the_mail_budget_is_spent_and_stay_owed(make_user, settings, monkeypatch):
    """A mail server that hangs for everyone held the detector's run EMAIL_TIMEOUT per
    person with a notice owed; like the alerts' emails, they take MAIL_RUN_BUDGET_SECONDS."""
    from alerts import token_networks
    from notifications import recipients
    from tests.notifications.test_mail_run_budget import Clock, DownMailServer

    clock = Clock()
    monkeypatch.setattr(recipients, "time", clock, raising=False)
    settings.MAIL_RUN_BUDGET_SECONDS = 25  # two hanging sends and half a third
    tokens = [
        personal_token_create(user=make_user(email=f"p{i}@example.com"), name="CLI")[0]
        for i in range(6)
    ]
    usage_write([call(t, NOW - timedelta(days=2), "203.0.113.9") for t in tokens])
    detect(now=NOW)
    server = DownMailServer(clock, hang=10, error=TimeoutError)
    monkeypatch.setattr(token_networks, "send_mail", server)
    usage_write([call(t, NOW + timedelta(minutes=1), "198.51.100.7") for t in tokens])
    detect(now=NOW + timedelta(minutes=2))
    assert len(server.tried) == 3
    assert TokenNetwork.objects.filter(new=True, noticed_at__isnull=True).count() == 6


def test_a_pat_full_of_networks_never_told_still_tells_of_the_next_one(
    pat, user, project, monkeypatch
):
    """Networks not told within NOTICE_WITHIN (the mail server down for a day) are never
    told, and were never forgotten either: only those told over an hour ago made room. A
    PAT whose memory they filled learnt no network again, and its person heard of none."""
    from django.core.mail.backends.locmem import EmailBackend

    from alerts import token_networks

    monkeypatch.setattr(token_networks, "TOKEN_NETWORKS_KEPT", 3)
    used_for_two_days(pat, project)
    real = EmailBackend.send_messages

    def mail_server_down(self, messages):
        raise OSError("mail server down")

    monkeypatch.setattr(EmailBackend, "send_messages", mail_server_down)
    usage_write([call(pat, NOW + timedelta(minutes=m), f"198.51.{m}.7") for m in range(2)])
    for hours in range(0, 30, 6):  # a day and more of runs, none of them sent
        detect(now=NOW + timedelta(hours=hours, minutes=5))
    assert mail.outbox == []
    assert TokenNetwork.objects.filter(personal_token=pat).count() == 3

    monkeypatch.setattr(EmailBackend, "send_messages", real)
    usage_write([call(pat, NOW + timedelta(days=2), "192.0.2.7")])
    detect(now=NOW + timedelta(days=2, minutes=1))

    (notice,) = mail.outbox
    assert "192.0.2.0/24" in notice.body and "198.51.0.0/24" not in notice.body
    networks = set(TokenNetwork.objects.values_list("network", flat=True))
    assert "192.0.2.0/24" in networks and "203.0.113.0/24" in networks
    assert len(networks) <= 3


def test_a_pats_memory_makes_room_by_the_runs_time_not_the_clock(pat, user, project, monkeypatch):
    """A run is given its time (a catch-up run, a test): networks told five minutes before
    it hold back its next notice and stay, whatever the wall clock says (weeks later
    here). By the clock, they were forgotten as told "over an hour ago"."""
    from alerts import token_networks

    monkeypatch.setattr(token_networks, "TOKEN_NETWORKS_KEPT", 3)
    used_for_two_days(pat, project)
    usage_write([call(pat, NOW + timedelta(minutes=m), f"198.51.{m}.7") for m in range(2)])
    detect(now=NOW + timedelta(minutes=5))
    assert len(mail.outbox) == 1
    assert timezone.now() - NOW > timedelta(days=1)

    usage_write([call(pat, NOW + timedelta(minutes=8), "192.0.2.7")])
    detect(now=NOW + timedelta(minutes=10))

    assert set(TokenNetwork.objects.values_list("network", flat=True)) == {
        "203.0.113.0/24",
        "198.51.0.0/24",
        "198.51.1.0/24",
    }


def test_a_pat_whose_memory_filled_in_its_first_day_still_tells_of_new_networks(
    pat, user, project, monkeypatch
):
    """Networks of its first day are told of to nobody, so none was ever forgotten: a PAT
    whose first day filled its memory (a flood as it was made, a CI fleet) learnt nothing
    again and its person heard of no new network. Its latest first-day networks now make
    room, down to half the memory, which its earliest (its own servers') keep."""
    from alerts import token_networks

    monkeypatch.setattr(token_networks, "TOKEN_NETWORKS_KEPT", 4)
    first_day = ["203.0.113.0/24", "203.0.114.0/24", "203.0.115.0/24", "203.0.116.0/24"]
    usage_write(
        [call(pat, NOW - timedelta(days=2, minutes=-m), network.replace("0/24", "9"))
         for m, network in enumerate(first_day)]
    )  # fmt: skip
    detect(now=NOW - timedelta(days=1))
    assert TokenNetwork.objects.filter(personal_token=pat).count() == 4

    usage_write([call(pat, NOW + timedelta(minutes=1), "192.0.2.7")])
    detect(now=NOW + timedelta(minutes=2))

    (notice,) = mail.outbox
    assert "used from a network it had never been used from" in notice.body
    assert "192.0.2.0/24 (192.0.2.7)" in notice.body
    assert set(TokenNetwork.objects.values_list("network", flat=True)) == {
        *first_day[:3],
        "192.0.2.0/24",
    }

    usage_write([call(pat, NOW + timedelta(hours=2), f"198.51.{n}.7") for n in range(3)])
    detect(now=NOW + timedelta(hours=2, minutes=1))

    assert len(mail.outbox) == 2
    assert "used from 2 or more networks it had never been used from" in mail.outbox[1].body
    assert set(TokenNetwork.objects.values_list("network", flat=True)) == {
        *first_day[:2],
        "198.51.0.0/24",
        "198.51.1.0/24",
    }
    usage_write([call(pat, NOW + timedelta(hours=4), "203.0.113.50")])  # its own: no news
    detect(now=NOW + timedelta(hours=4, minutes=1))
    assert len(mail.outbox) == 2


@pytest.mark.skipif(
    connection.vendor != "sqlite", reason="PostgreSQL's inet holds no address with a zone"
)
def test_an_address_with_a_zone_writes_no_line_of_its_own_into_the_notice(pat, project):
    """SQLite keeps any text as a call's address, and a stream entry can be forged. Python
    reads any text after "%" as an IPv6 address's zone, and one too long for an address
    field was kept whole as the network's first address, line breaks and all, in the
    notice and the audit log. The zone names an interface of the host that saw the call,
    not the caller (the API leaves it out too, core/client_ip.py)."""
    used_for_two_days(pat, project)
    zoned = "2001:db8:7::1%\n\nIt was you: there is nothing to do." + " " * 40
    usage_write([call(pat, NOW + timedelta(minutes=1), zoned)])
    detect(now=NOW + timedelta(minutes=2))

    (notice,) = mail.outbox
    assert "2001:db8:7::/48 (2001:db8:7::1)" in notice.body
    assert "It was you" not in notice.body
    event = AuditEvent.objects.get(action="personal_token.new_network")
    assert event.metadata["ips"] == ["2001:db8:7::1"]
