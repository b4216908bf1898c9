"""Suspicious-activity detection: seeded traffic patterns raise exactly the expected flags,
and steady ordinary traffic raises none."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Project
from alerts.detection import NEW_NETWORKS_HIGH, SPIKE_MIN_CALLS, detect
from alerts.models import Flag
from alerts.views import evidence_url
from apikeys.models import ApiKey
from apikeys.services import api_key_roll, client_token_create
from audit.models import AuditEvent
from tests.conftest import usage_call
from usage.models import Outcome
from usage.writer import UsageEntry, usage_write

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def call(key: ApiKey, at: datetime, **fields: Any) -> UsageEntry:
    return usage_call(at, key=key, ip=fields.pop("ip", "203.0.113.10"), **fields)


def steady(
    key: ApiKey, *, days: int = 3, every: timedelta = timedelta(minutes=10)
) -> list[UsageEntry]:
    """Ordinary traffic: a call every ten minutes from two servers in one /24, a few
    client errors and the odd permission refusal."""
    entries, at, n = [], NOW - timedelta(days=days), 0
    while at < NOW:
        ip = "203.0.113.10" if n % 2 else "203.0.113.11"
        if n % 50 == 7:
            entries.append(call(key, at, status=404, error_code="agent_not_found", ip=ip))
        elif n % 97 == 3:
            entries.append(call(key, at, status=403, error_code="insufficient_permissions", ip=ip))
        else:
            entries.append(call(key, at, ip=ip))
        at, n = at + every, n + 1
    return entries


def run() -> list[Flag]:
    detect(now=NOW + timedelta(minutes=1))
    return list(Flag.objects.order_by("id"))


@pytest.fixture
def key(api_key) -> ApiKey:
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=30))
    key.refresh_from_db()
    return key


def test_steady_ordinary_traffic_raises_no_flag(key):
    usage_write(steady(key))
    assert run() == []


def test_steady_traffic_from_many_keys_and_client_tokens_raises_no_flag(key, make_key, project):
    other, _ = make_key(project, name="Worker")
    ApiKey.objects.filter(pk=other.pk).update(created_at=NOW - timedelta(days=30))
    minted, _ = client_token_create(project=project, api_key=key, context={})
    browser = [
        call(key, NOW - timedelta(minutes=m), ip="198.51.100.5", client_token_id=minted.pk)
        for m in range(1, 30)
    ]
    usage_write(steady(key) + steady(other, every=timedelta(minutes=7)) + browser)
    assert run() == []


def test_a_revoked_key_still_tried_raises_one_high_flag_and_emails_owners_once(key, user):
    usage_write(steady(key, days=2))
    key.revoke(by=None)
    tries = [
        call(
            key,
            NOW - timedelta(minutes=m),
            status=401,
            error_code="expired_api_key",
            ip="192.0.2.66",
        )
        for m in (5, 4, 3)
    ]
    usage_write(tries)
    [flag] = run()
    assert (flag.kind, flag.severity, flag.api_key, flag.occurrences) == (
        Flag.Kind.ENDED_TOKEN_USED,
        Flag.Severity.HIGH,
        key,
        3,
    )
    assert "192.0.2.66" in flag.summary
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [user.email]

    usage_write([call(key, NOW - timedelta(minutes=1), status=401, error_code="expired_api_key")])
    [flag] = run()
    assert flag.occurrences == 4
    assert len(mail.outbox) == 1  # the same key within the hour: no second email


def test_an_open_alert_keeps_counting_past_a_32_bit_integer(key, user):
    """An alert stays open, adding each run's occurrences, until someone acknowledges it:
    a key refused for years (or a flood of refused calls) takes it past 2**31, where a
    32-bit count stopped its updates (the flag's write failed and was skipped)."""
    usage_write(steady(key, days=2))
    key.revoke(by=None)
    refused = {"status": 401, "error_code": "expired_api_key", "ip": "192.0.2.66"}
    usage_write([call(key, NOW - timedelta(minutes=5), **refused)])
    [flag] = run()
    Flag.objects.filter(pk=flag.pk).update(occurrences=2**31 - 1)
    usage_write([call(key, NOW - timedelta(minutes=m), **refused) for m in (2, 1)])
    [flag] = run()
    assert flag.occurrences == 2**31 + 1
    flag.refresh_from_db()
    assert flag.occurrences == 2**31 + 1


def test_a_second_high_alert_of_a_key_within_the_hour_is_emailed_once_the_hour_is_over(key, user):
    """One email per key an hour, so that a busy incident is not a flood; but an alert of
    another kind raised in that hour (the key refused outside its networks, then tried
    after its revocation) is held back, not dropped: its email goes once the hour is over,
    while it is still open."""
    usage_write(steady(key, days=2))
    refused = {"status": 403, "error_code": "ip_not_allowed", "ip": "192.0.2.66"}
    usage_write([call(key, NOW - timedelta(minutes=m), **refused) for m in (3, 2)])
    detect(now=NOW + timedelta(minutes=1))
    assert [m.subject for m in mail.outbox] == [
        f"[Reminix] Used from outside its allowed networks in {key.project.name}"
    ]
    key.revoke(by=None)
    ended = {"status": 401, "error_code": "expired_api_key", "ip": "192.0.2.66"}
    usage_write([call(key, NOW + timedelta(minutes=m), **ended) for m in (3, 4)])
    detect(now=NOW + timedelta(minutes=5))
    assert len(mail.outbox) == 1  # within the hour: held back
    detect(now=NOW + timedelta(minutes=30))
    assert len(mail.outbox) == 1
    detect(now=NOW + timedelta(minutes=62))
    assert len(mail.outbox) == 2
    assert "Revoked or expired" in mail.outbox[1].subject
    detect(now=NOW + timedelta(minutes=130))
    assert len(mail.outbox) == 2  # each once


def test_a_rolled_keys_old_secret_still_tried_names_the_old_secret_not_the_working_one(key, user):
    old_hint = key.hint
    api_key_roll(api_key=key, by=user, overlap=timedelta(0))
    key.refresh_from_db()
    usage_write([call(key, NOW - timedelta(minutes=2), status=401, error_code="expired_api_key")])
    [flag] = run()
    assert flag.kind == Flag.Kind.ENDED_TOKEN_USED
    assert old_hint in flag.summary
    assert "no longer works" not in flag.summary  # the key does: its new secret
    assert f"current secret ({key.hint}) still works" in flag.summary


def test_an_ended_client_token_still_tried_is_flagged_against_the_token(key, project):
    minted, _ = client_token_create(project=project, api_key=key, context={})
    usage_write(
        [
            call(
                key,
                NOW - timedelta(minutes=2),
                status=401,
                error_code="expired_api_key",
                client_token_id=minted.pk,
            )
        ]
    )
    [flag] = run()
    assert (flag.kind, flag.client_token) == (Flag.Kind.ENDED_TOKEN_USED, minted)
    assert minted.public_id in flag.summary


def test_an_ended_client_tokens_alert_leads_to_its_calls_and_its_key(key, project, signed_in):
    """A leaked browser token tried after its key was rolled: the alert names the key that
    minted it, so "See the calls" and the key's suspend, roll and revoke are there."""
    minted, _ = client_token_create(project=project, api_key=key, context={})
    usage_write(
        [
            call(key, NOW - timedelta(minutes=5), ip="203.0.113.10"),
            *[
                call(
                    key,
                    NOW - timedelta(minutes=2, seconds=s),
                    status=401,
                    error_code="expired_api_key",
                    client_token_id=minted.pk,
                    ip="192.0.2.44",
                )
                for s in range(3)
            ],
        ]
    )
    [flag] = run()
    assert (flag.api_key, flag.client_token) == (key, minted)
    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert [(r.client_token_id, r.ip) for r in rows] == [(minted.pk, "192.0.2.44")] * 3
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert reverse("apikeys:api_key_roll", args=[project.slug, key.pk]) in html


def test_a_new_network_after_the_first_day_is_flagged_once(key):
    usage_write(steady(key, days=2))
    usage_write(
        [
            call(key, NOW - timedelta(minutes=9), ip="198.51.100.7"),
            call(key, NOW - timedelta(minutes=8), ip="198.51.100.99"),  # same /24
        ]
    )
    [flag] = run()
    assert (flag.kind, flag.severity) == (Flag.Kind.NEW_NETWORK, Flag.Severity.MEDIUM)
    assert flag.evidence["network"] == "198.51.100.0/24"
    assert flag.occurrences == 1  # the network is known from its first call on


def test_a_client_tokens_browser_in_a_new_network_raises_no_alert_the_keys_own_call_does(
    key, project
):
    """Browsers come from everywhere: a new-network alert is about the key's own calls, as
    the key's addresses and its allowed networks are (usage.UsageIp.via_client_tokens)."""
    minted, _ = client_token_create(project=project, api_key=key, context={})
    usage_write(steady(key, days=2))
    usage_write(
        [call(key, NOW - timedelta(minutes=9), ip="198.51.100.7", client_token_id=minted.pk)]
    )
    assert run() == []
    usage_write([call(key, NOW - timedelta(minutes=5), ip="198.51.100.8")])
    [flag] = run()
    assert (flag.kind, flag.evidence["network"]) == (Flag.Kind.NEW_NETWORK, "198.51.100.0/24")
    assert flag.evidence["ips"] == ["198.51.100.8"]


def test_a_key_used_from_many_new_networks_at_once_raises_one_alert_naming_them(key):
    """A leaked key sprayed from 300 addresses in 300 networks is one incident: one alert
    that counts the networks, not 300 alerts (and 300 webhook deliveries) to acknowledge."""
    usage_write(steady(key, days=2))
    run()
    usage_write(
        [
            call(
                key,
                NOW - timedelta(minutes=20) + timedelta(seconds=i),
                ip=f"10.{i // 250}.{i % 250}.5",
            )
            for i in range(300)
        ]
    )
    [flag] = [f for f in run() if f.kind == Flag.Kind.NEW_NETWORK]  # and a volume spike
    assert (flag.api_key, flag.occurrences) == (key, 300)
    assert flag.evidence["count"] == 300
    assert flag.evidence["networks"][:2] == ["10.0.0.0/24", "10.0.1.0/24"]
    assert "300 networks" in flag.summary
    # Which of them would be "ours" is not one click's call: the button is for one network.
    assert flag.network_in_question() is None
    # Its link shows the calls from all of them, not those of the first address alone.
    assert "ip=" not in evidence_url(flag)

    usage_write([call(key, NOW - timedelta(minutes=1), ip="192.0.2.9")])
    [flag] = [f for f in run() if f.kind == Flag.Kind.NEW_NETWORK]
    assert (flag.occurrences, flag.evidence["count"]) == (301, 301)


def test_a_key_used_from_many_new_networks_becomes_high_and_its_owners_are_emailed(key, user):
    """One new network may be a new server (medium, on the page); a key taken up in one
    network after another is likely leaked, and someone should hear of it."""
    usage_write(steady(key, days=2))
    run()
    ips = [f"198.51.{n}.7" for n in range(NEW_NETWORKS_HIGH)]
    usage_write([call(key, NOW - timedelta(minutes=9), ip=ip) for ip in ips[:-1]])
    [flag] = run()
    assert (flag.kind, flag.severity, len(mail.outbox)) == (
        Flag.Kind.NEW_NETWORK,
        Flag.Severity.MEDIUM,
        0,
    )
    usage_write([call(key, NOW - timedelta(minutes=8), ip=ips[-1])])
    [flag] = run()
    assert (flag.severity, flag.occurrences) == (Flag.Severity.HIGH, NEW_NETWORKS_HIGH)
    assert "may have leaked" in flag.summary
    [message] = mail.outbox
    assert message.to == [user.email] and f"{NEW_NETWORKS_HIGH} networks" in message.body


def test_a_new_network_alert_open_for_days_that_becomes_high_is_emailed(key, user):
    """The usual way a leak shows: one new network (a medium alert, left open on the page
    for days), then the key taken up elsewhere. Its alert becomes high then, and that is
    when someone must hear of it, however long ago it was opened."""
    usage_write(steady(key, days=2))
    run()
    ips = [f"198.51.{n}.7" for n in range(NEW_NETWORKS_HIGH)]
    usage_write([call(key, NOW - timedelta(minutes=9), ip=ips[0])])
    [flag] = run()
    assert flag.severity == Flag.Severity.MEDIUM
    Flag.objects.filter(pk=flag.pk).update(created_at=NOW - timedelta(days=3))
    usage_write([call(key, NOW - timedelta(minutes=8), ip=ip) for ip in ips[1:]])
    [flag] = run()
    assert flag.severity == Flag.Severity.HIGH
    [message] = mail.outbox
    assert message.to == [user.email] and f"{NEW_NETWORKS_HIGH} networks" in message.body


def test_a_key_calling_agents_it_never_called_raises_one_alert_naming_them(key):
    """A billing key that suddenly calls payroll-admin and export-all from its own servers:
    the network is known, the volume ordinary, but the agents are not its own."""
    usage_write(steady(key, days=2))  # my-agent, all along
    assert run() == []
    usage_write(
        [
            call(key, NOW - timedelta(minutes=3), agent="payroll-admin", path=None),
            call(key, NOW - timedelta(minutes=2), agent="payroll-admin"),
            call(key, NOW - timedelta(minutes=1), agent="export-all"),
        ]
    )
    [flag] = run()
    assert (flag.kind, flag.severity, flag.api_key) == (
        Flag.Kind.NEW_AGENT,
        Flag.Severity.MEDIUM,
        key,
    )
    assert flag.evidence["agents"] == ["payroll-admin", "export-all"]
    assert "payroll-admin" in flag.summary and "export-all" in flag.summary
    usage_write([call(key, NOW, agent="payroll-admin")])
    assert [f.occurrences for f in run()] == [2]  # learnt: once per agent


def test_a_new_agent_alert_about_many_long_names_says_its_whole_summary(key):
    """The summary (the alerts page, the email's first line) is cut at 300 characters: a
    key calling a dozen agents of long names lost the end of its sentence, and with it the
    advice, cut mid-word. The first few are named, and how many there are."""
    usage_write(steady(key, days=2))
    run()
    agents = [f"nightly-reconciliation-export-{n:02d}" for n in range(12)]
    usage_write([call(key, NOW - timedelta(minutes=1), agent=agent) for agent in agents])
    [flag] = run()
    assert flag.kind == Flag.Kind.NEW_AGENT
    assert flag.summary.endswith("If nothing of yours does this, it may have leaked.")
    assert "12 agents" in flag.summary and agents[0] in flag.summary
    assert flag.evidence["agents"] == agents  # all of them listed, on the alert itself


def test_a_new_agent_alerts_calls_are_those_to_the_agent_it_names_first(key, project, signed_in):
    """The "See the calls" link opens the calls to the first new agent, not every call of the key
    in those minutes; the alert says which, and of how many."""
    usage_write(steady(key, days=2))
    run()
    usage_write(
        [
            call(key, NOW - timedelta(minutes=3), agent="payroll-admin"),
            call(key, NOW - timedelta(minutes=2), agent="my-agent"),
            call(key, NOW - timedelta(minutes=2), agent="payroll-admin", status=404),
            call(key, NOW - timedelta(minutes=1), agent="export-all"),
        ]
    )
    [flag] = run()
    url = evidence_url(flag)
    assert "agent=payroll-admin" in url
    rows = signed_in.get(url).context["page"].rows
    assert {r.agent for r in rows} == {"payroll-admin"} and len(rows) == 2
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert "the first of the 2 agents" in html


def test_a_new_agent_alert_about_one_agent_names_no_count(key, project, signed_in):
    usage_write(steady(key, days=2))
    run()
    usage_write([call(key, NOW - timedelta(minutes=3), agent="payroll-admin")])
    [flag] = run()
    assert "agent=payroll-admin" in evidence_url(flag)
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert "the first of" not in html


def test_agents_a_key_calls_in_its_first_day_are_its_own(key):
    start = NOW - timedelta(days=2)
    usage_write(
        [
            call(key, start, agent="billing"),
            call(key, start + timedelta(hours=20), agent="reports"),
            call(key, NOW - timedelta(minutes=5), agent="reports"),
            call(key, NOW - timedelta(minutes=4), agent="billing"),
        ]
    )
    assert run() == []


def test_networks_seen_in_the_first_day_are_the_keys_baseline(key):
    first_day = NOW - timedelta(days=2)
    usage_write(
        [
            call(key, first_day, ip="203.0.113.10"),
            call(key, first_day + timedelta(hours=5), ip="198.51.100.7"),
            call(key, NOW - timedelta(hours=1), ip="198.51.100.8"),
        ]
    )
    assert run() == []


def test_ipv6_networks_are_compared_by_their_48(key):
    usage_write(
        [
            call(key, NOW - timedelta(days=3), ip="2001:db8:1::1"),
            call(key, NOW - timedelta(hours=2), ip="2001:db8:1:ffff::2"),
            call(key, NOW - timedelta(hours=1), ip="2001:db8:2::1"),
        ]
    )
    [flag] = run()
    assert flag.evidence["network"] == "2001:db8:2::/48"


def test_a_volume_spike_over_the_keys_own_baseline_is_flagged(key):
    usage_write(steady(key, days=2))  # six calls an hour
    spike_hour = NOW - timedelta(hours=1)
    usage_write([call(key, spike_hour + timedelta(seconds=s * 10)) for s in range(150)])
    flags = [f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE]
    assert len(flags) == 1
    assert flags[0].evidence["count"] >= 150
    assert flags[0].evidence["baseline_per_hour"] == pytest.approx(6, abs=1)


def test_a_nightly_batch_job_is_the_keys_rhythm_not_a_spike_every_night(key):
    """300 calls from 02:00 every night and a trickle by day: the hour is busy every
    day, so it is ordinary for that hour, however far above the key's hourly average."""
    entries = []
    for day in range(8, 0, -1):
        night = (NOW - timedelta(days=day)).replace(hour=2)
        entries += [call(key, night + timedelta(seconds=10 * i)) for i in range(300)]
        entries += [call(key, night.replace(hour=h)) for h in range(8, 18)]
    usage_write(entries)
    assert run() == []


def test_the_nightly_batch_size_at_another_hour_is_still_a_spike(key):
    entries = []
    for day in range(8, 0, -1):
        night = (NOW - timedelta(days=day)).replace(hour=2)
        entries += [call(key, night + timedelta(seconds=10 * i)) for i in range(300)]
    usage_write(entries)
    run()
    afternoon = NOW - timedelta(hours=1)
    usage_write([call(key, afternoon + timedelta(seconds=10 * i)) for i in range(300)])
    [flag] = run()
    assert (flag.kind, flag.evidence["count"]) == (Flag.Kind.VOLUME_SPIKE, 300)


def test_a_spike_lasting_hours_is_one_alert_that_counts_them(key):
    """Abuse that goes on for three hours is one incident: one alert, not one an hour."""
    usage_write(steady(key, days=2))
    run()
    start = NOW - timedelta(hours=3)
    for hour in range(3):
        at = start + timedelta(hours=hour)
        usage_write([call(key, at + timedelta(seconds=10 * s)) for s in range(150)])
        detect(now=at + timedelta(minutes=30))
    [flag] = Flag.objects.filter(kind=Flag.Kind.VOLUME_SPIKE)
    assert flag.evidence["hours"] == 3
    assert flag.evidence["since"] == start.isoformat()
    assert "3 hours" in flag.summary


def test_a_spike_lasting_hours_of_a_key_with_a_long_name_says_its_whole_summary(key):
    """The summary is cut at 300 characters: a key named at its 100-character limit, over
    its usual for hours, lost the end (since when, " UTC."). Its name is cut short instead."""
    key.name = "Nightly reconciliation export for the payroll and invoicing systems " + "x" * 32
    key.save(update_fields=["name"])
    assert len(key.name) == 100
    usage_write(steady(key, days=2))
    run()
    start = NOW - timedelta(hours=3)
    for hour in range(3):
        at = start + timedelta(hours=hour)
        usage_write([call(key, at + timedelta(seconds=s / 4)) for s in range(12_000)])
        detect(now=at + timedelta(minutes=30))
    [flag] = Flag.objects.filter(kind=Flag.Kind.VOLUME_SPIKE)
    assert flag.summary.startswith("Key “Nightly reconciliation export")
    assert flag.summary.endswith(f"Over its usual in 3 hours since {start:%-d %b, %H:%M} UTC.")
    assert f"…” ({key.hint}) made 12006 calls" in flag.summary  # which key, its hint whole
    assert len(flag.summary) <= 300


def test_a_new_key_has_no_baseline_and_no_spike(key):
    usage_write([call(key, NOW - timedelta(minutes=30) + timedelta(seconds=s)) for s in range(300)])
    assert run() == []


def test_a_burst_of_permission_failures_is_flagged_but_scattered_ones_are_not(
    key, make_key, project
):
    burst = [
        call(
            key,
            NOW - timedelta(minutes=5) + timedelta(seconds=10 * i),
            status=403,
            error_code="insufficient_permissions",
            ip="192.0.2.7",
        )
        for i in range(25)
    ]
    calm, _ = make_key(project, name="Calm")
    scattered = [
        call(calm, NOW - timedelta(hours=h), status=403, error_code="insufficient_permissions")
        for h in range(1, 30)
    ]
    usage_write(burst + scattered)
    [flag] = run()
    assert (flag.kind, flag.severity, flag.api_key) == (
        Flag.Kind.AUTH_FAILURE_BURST,
        Flag.Severity.HIGH,
        key,
    )
    assert flag.evidence["count"] == 25 and flag.evidence["ips"] == ["192.0.2.7"]


def test_a_client_token_used_from_many_addresses_is_flagged(key, project):
    shared, _ = client_token_create(project=project, api_key=key, context={})
    normal, _ = client_token_create(project=project, api_key=key, context={})
    usage_write(
        [
            call(
                key, NOW - timedelta(minutes=10 - i), ip=f"198.51.{i}.9", client_token_id=shared.pk
            )
            for i in range(6)
        ]
        + [call(key, NOW - timedelta(minutes=3), ip="198.51.200.1", client_token_id=normal.pk)]
    )
    [flag] = run()
    assert (flag.kind, flag.client_token) == (Flag.Kind.CLIENT_TOKEN_MANY_IPS, shared)
    assert flag.evidence["count"] == 6


def test_a_key_unused_for_90_days_is_flagged_low_once(key, make_key, project):
    ApiKey.objects.filter(pk=key.pk).update(
        created_at=NOW - timedelta(days=200), last_used_at=NOW - timedelta(days=91)
    )
    recent, _ = make_key(project, name="Recent")
    ApiKey.objects.filter(pk=recent.pk).update(
        created_at=NOW - timedelta(days=200), last_used_at=NOW - timedelta(days=10)
    )
    [flag] = run()
    assert (flag.kind, flag.severity, flag.api_key) == (
        Flag.Kind.UNUSED_KEY,
        Flag.Severity.LOW,
        key,
    )
    assert run() == [flag]  # not raised again


def test_a_key_used_again_after_its_unused_flag_is_flagged_again_when_it_falls_quiet(key):
    ApiKey.objects.filter(pk=key.pk).update(
        created_at=NOW - timedelta(days=300),
        last_used_at=NOW - timedelta(days=91),
        expires_at=None,
    )
    [first] = run()
    Flag.objects.filter(pk=first.pk).update(acknowledged_at=NOW)
    # Used again the next day, then quiet for more than 90 days.
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=NOW + timedelta(days=1))
    later = NOW + timedelta(days=92)
    detect(now=later)
    flags = Flag.objects.filter(kind=Flag.Kind.UNUSED_KEY).order_by("id")
    assert flags.count() == 2
    assert flags.last().first_seen == NOW + timedelta(days=1)
    detect(now=later + timedelta(minutes=1))
    assert flags.count() == 2  # and only once for this quiet spell


def test_detection_reads_each_call_once(key):
    key.revoke(by=None)
    usage_write([call(key, NOW - timedelta(minutes=3), status=401, error_code="expired_api_key")])
    run()
    run()
    assert Flag.objects.get().occurrences == 1


# -- The alerts page -----------------------------------------------------------------------


@pytest.fixture
def revoked_flag(key) -> Flag:
    key.revoke(by=None)
    usage_write(
        [
            call(
                key,
                NOW - timedelta(minutes=3),
                status=401,
                error_code="expired_api_key",
                ip="192.0.2.66",
            )
        ]
    )
    [flag] = run()
    return flag


def test_the_alerts_page_explains_the_flag_and_links_to_the_calls(signed_in, project, revoked_flag):
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert "no longer works but is still being tried (from 192.0.2.66)" in html
    link = reverse("usage:api_key_usage", args=[project.slug, revoked_flag.api_key_id])
    # The key's own refusals: its client tokens' refused after it ended are their own alerts.
    assert f"{link}?outcome={Outcome.REVOKED_KEY}&caller=key" in html.replace("&amp;", "&")
    rows = signed_in.get(
        f"{link}?outcome=revoked_key&caller=key&since=2026-11-20T11:57&until=2026-11-20T11:58"
    ).content.decode()
    assert "expired_<wbr>api_<wbr>key" in rows  # the code, breakable after its underscores


def test_open_alerts_show_in_the_navigation_and_on_the_key_list(signed_in, project, revoked_flag):
    html = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug])).content.decode()
    assert 'aria-label="1 open"' in html
    assert "1 alert<" in html


def test_a_member_acknowledges_an_alert_and_who_and_when_are_kept(
    signed_in, project, user, revoked_flag
):
    url = reverse("alerts:flag_acknowledge", args=[project.slug, revoked_flag.pk])
    signed_in.post(url)
    revoked_flag.refresh_from_db()
    assert revoked_flag.acknowledged_by == user and revoked_flag.acknowledged_at is not None
    assert AuditEvent.objects.filter(
        action="flag.acknowledged", project=project, actor=user
    ).exists()
    html = signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    assert f"by {user.email}" in html


def test_a_new_occurrence_after_acknowledgement_opens_a_new_alert(
    signed_in, project, key, revoked_flag
):
    signed_in.post(reverse("alerts:flag_acknowledge", args=[project.slug, revoked_flag.pk]))
    usage_write([call(key, NOW - timedelta(minutes=1), status=401, error_code="expired_api_key")])
    flags = run()
    assert len(flags) == 2
    assert flags[1].acknowledged_at is None and flags[1].occurrences == 1


def test_another_projects_alerts_are_invisible_and_cannot_be_acknowledged(
    client, make_user, revoked_flag
):
    intruder = make_user(email="intruder@example.com")
    theirs = Project.objects.for_user(intruder).get()
    client.force_login(intruder)
    html = client.get(reverse("alerts:flag_list", args=[theirs.slug])).content.decode()
    assert revoked_flag.summary[:20] not in html
    for slug in (theirs.slug, revoked_flag.project.slug):
        response = client.post(reverse("alerts:flag_acknowledge", args=[slug, revoked_flag.pk]))
        assert response.status_code == 404
    revoked_flag.refresh_from_db()
    assert revoked_flag.acknowledged_at is None


def test_a_second_high_alert_for_the_same_key_within_the_hour_sends_no_second_email(key, user):
    key.revoke(by=None)
    usage_write([call(key, NOW - timedelta(minutes=8), status=401, error_code="expired_api_key")])
    run()
    assert len(mail.outbox) == 1
    burst = [
        call(
            key,
            NOW - timedelta(minutes=5) + timedelta(seconds=5 * i),
            status=403,
            error_code="insufficient_permissions",
        )
        for i in range(25)
    ]
    usage_write(burst)
    kinds = {f.kind for f in run()}
    assert kinds == {Flag.Kind.ENDED_TOKEN_USED, Flag.Kind.AUTH_FAILURE_BURST}
    assert len(mail.outbox) == 1


def test_just_under_the_thresholds_nothing_is_flagged(key, project, make_key):
    minted, _ = client_token_create(project=project, api_key=key, context={})
    usage_write(
        [
            call(key, NOW - timedelta(minutes=9 - i), ip=f"198.51.{i}.9", client_token_id=minted.pk)
            for i in range(4)
        ]
        + [
            call(
                key,
                NOW - timedelta(minutes=6) + timedelta(seconds=5 * i),
                status=403,
                error_code="insufficient_permissions",
            )
            for i in range(19)
        ]
    )
    assert run() == []


def test_a_suspended_key_still_tried_raises_no_burst_and_no_unused_key_flag(
    key, make_key, project, user
):
    """The project suspended it: its refusals (401 suspended_api_key) are not someone
    probing, and a key quiet because it is suspended is not forgotten."""
    from apikeys.services import api_key_suspend

    api_key_suspend(api_key=key, by=user, reason="Paused")
    usage_write(
        [
            call(
                key,
                NOW - timedelta(minutes=5) + timedelta(seconds=10 * i),
                status=401,
                error_code="suspended_api_key",
            )
            for i in range(25)
        ]
    )
    quiet, _ = make_key(project, name="Quiet")
    api_key_suspend(api_key=quiet, by=user, reason="Paused")
    ApiKey.objects.filter(pk=quiet.pk).update(
        created_at=NOW - timedelta(days=200), last_used_at=NOW - timedelta(days=91)
    )
    assert run() == []


def test_an_alert_offers_to_suspend_its_key_and_then_says_it_is_suspended(
    signed_in, project, key, user
):
    """Issue 11, point 6: from an alert, stop the key at once without losing it."""
    from apikeys.services import api_key_suspend

    usage_write(steady(key, days=2))
    usage_write([call(key, NOW - timedelta(minutes=9), ip="198.51.100.7")])
    [flag] = run()
    url = reverse("alerts:flag_list", args=[project.slug])
    suspend = reverse("apikeys:api_key_suspend", args=[project.slug, key.pk])
    html = signed_in.get(url).content.decode()
    assert f'href="{suspend}">Suspend key…' in html

    form = signed_in.get(suspend)  # the link opens the key list with the reason asked
    assert form.status_code == 200 and 'name="reason"' in form.content.decode()
    api_key_suspend(api_key=key, by=user, reason="Alert: new network")
    html = signed_in.get(url).content.decode()
    assert "Suspend key…" not in html
    assert (
        f'<code class="hint">{key.hint}</code> <span class="badge badge-warning">suspended' in html
    )


def refused(key: ApiKey, at: datetime) -> UsageEntry:
    return call(key, at, status=403, error_code="insufficient_permissions")


def test_a_burst_says_when_its_first_and_last_refused_calls_were(key):
    """Not the window's edges: the review saw "first seen 14:26" for a first failure at 14:34."""
    first = NOW - timedelta(minutes=3, seconds=17)
    usage_write([refused(key, first + timedelta(seconds=5 * i)) for i in range(20)])
    [flag] = run()
    assert flag.kind == Flag.Kind.AUTH_FAILURE_BURST
    assert flag.first_seen == first
    assert flag.last_seen == first + timedelta(seconds=5 * 19)


def test_a_burst_needs_twenty_refusals_within_ten_minutes(key, make_key, project):
    """19 in the window raise nothing; 20 do; 20 that span just over ten minutes do not."""
    usage_write(
        [refused(key, NOW - timedelta(minutes=9) + timedelta(seconds=i)) for i in range(19)]
    )
    assert run() == []
    spread, _ = make_key(project, name="Spread")
    start = NOW - timedelta(minutes=20)
    # The first and the last are 10 minutes and 1 second apart: never 20 inside one window.
    times = [start + timedelta(seconds=i * 601 / 19) for i in range(20)]
    usage_write([refused(spread, t) for t in times])
    assert run() == []
    usage_write([refused(key, NOW - timedelta(seconds=30))])
    [flag] = run()
    assert flag.api_key == key and flag.evidence["count"] == 20


def test_a_spike_says_when_its_first_and_last_calls_of_the_hour_were(key):
    hour = NOW - timedelta(hours=1)
    # Six calls an hour, none in the spike's hour: its first call is the spike's own.
    usage_write([e for e in steady(key, days=2) if not hour <= e.created_at < NOW])
    first = hour + timedelta(minutes=7, seconds=3)
    usage_write([call(key, first + timedelta(seconds=s * 10)) for s in range(150)])
    [flag] = [f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE]
    assert flag.first_seen == first
    assert flag.last_seen == first + timedelta(seconds=149 * 10)


def test_a_spike_needs_a_hundred_calls_and_five_times_the_baseline(key, make_key, project):
    ordinary = steady(key, days=2)  # a baseline of 6 an hour: 5x is 30, under the minimum
    usage_write(ordinary)
    hour = NOW - timedelta(hours=1)
    in_hour = sum(1 for e in ordinary if hour <= e.created_at < hour + timedelta(hours=1))
    extra = SPIKE_MIN_CALLS - 1 - in_hour
    usage_write([call(key, hour + timedelta(seconds=5 + s)) for s in range(extra)])
    assert [f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE] == []
    usage_write([call(key, hour + timedelta(minutes=30))])
    assert len([f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE]) == 1


def test_a_revoked_key_alert_spans_its_first_and_last_attempt_across_runs(key, user):
    from apikeys.services import api_key_revoke

    api_key_revoke(api_key=key, by=user)
    t1 = NOW - timedelta(minutes=40, seconds=11)
    usage_write([call(key, t1, status=401, error_code="expired_api_key")])
    [flag] = run()
    assert (flag.first_seen, flag.last_seen) == (t1, t1)
    t2 = NOW - timedelta(seconds=9)
    usage_write([call(key, t2, status=401, error_code="expired_api_key")])
    [flag] = run()
    assert (flag.first_seen, flag.last_seen, flag.occurrences) == (t1, t2, 2)
