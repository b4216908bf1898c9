"""Issue 14, point 2: every alert kind at the edges of its threshold, from hand-made calls.

The burst, spike and revoked-key kinds have theirs in test_detection.py; these are the
others: new_network, client_token_many_ips, unused_key and blocked_network. For each,
calls just short of the threshold raise nothing, calls exactly at it raise the alert,
calls just outside its time span raise nothing (client_token_many_ips and
blocked_network have none: a token's whole life, every refusal not read yet), and the
alert's first and last seen are the times of the calls behind it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.urls import reverse

from alerts.detection import CLIENT_TOKEN_MAX_IPS, NEW_NETWORK_GRACE, UNUSED_AFTER
from alerts.models import Flag
from alerts.views import evidence_url
from apikeys.models import ApiKey
from apikeys.services import client_token_create
from tests.alerts import test_detection
from tests.alerts.test_detection import NOW, call, run
from usage.writer import UsageEntry, usage_write

key = test_detection.key  # the fixture: a key made thirty days before NOW

# run() checks one minute after NOW: an unused key is one last used before this.
CHECKED = NOW + timedelta(minutes=1)
SECOND = timedelta(seconds=1)


# -- new_network: a success from a /24 (/48) the key never used, after its first day -------

START = NOW - timedelta(days=3, minutes=17, seconds=5)
HOME = "203.0.113.10"


def test_a_new_network_exactly_one_day_after_first_use_is_still_the_keys_baseline(key):
    usage_write([call(key, START, ip=HOME)])
    assert run() == []
    usage_write([call(key, START + NEW_NETWORK_GRACE, ip="198.51.100.7")])
    assert run() == []
    # Known from then on: the same /24 later is nothing new either.
    usage_write([call(key, NOW - timedelta(minutes=5), ip="198.51.100.200")])
    assert run() == []


def test_a_new_network_one_second_after_the_first_day_is_flagged_at_its_first_call(key):
    first = START + NEW_NETWORK_GRACE + SECOND
    usage_write([call(key, START, ip=HOME)])
    run()
    usage_write(
        [
            call(key, first, ip="198.51.100.7"),
            call(key, first + timedelta(hours=2), ip="198.51.100.99"),  # same /24
        ]
    )
    [flag] = run()
    assert (flag.kind, flag.evidence["network"]) == (Flag.Kind.NEW_NETWORK, "198.51.100.0/24")
    # The finding is the network's first call: later calls from it are the network's
    # ordinary use, not more of the finding.
    assert (flag.first_seen, flag.last_seen, flag.occurrences) == (first, first, 1)


def test_calls_that_are_not_a_keys_own_successes_make_no_network_new(key, project):
    """Just short of the finding: another address in a known /24, a refused call, and a
    browser's call through a client token, all from outside after the first day."""
    minted, _ = client_token_create(project=project, api_key=key, context={})
    later = START + NEW_NETWORK_GRACE + timedelta(hours=1)
    usage_write([call(key, START, ip=HOME)])
    usage_write(
        [
            call(key, later, ip="203.0.113.250"),
            call(key, later, ip="198.51.100.7", status=403, error_code="insufficient_permissions"),
            call(key, later, ip="192.0.2.44", client_token_id=minted.pk),
        ]
    )
    assert run() == []


# -- client_token_many_ips: one client token from CLIENT_TOKEN_MAX_IPS addresses or more ---


def test_a_client_token_from_one_address_short_of_the_limit_is_not_flagged(key, project):
    minted, _ = client_token_create(project=project, api_key=key, context={})
    other, _ = client_token_create(project=project, api_key=key, context={})
    at = NOW - timedelta(minutes=30)
    addresses = [f"198.51.100.{i}" for i in range(1, CLIENT_TOKEN_MAX_IPS)]
    first = [
        call(key, at + i * SECOND, ip=ip, client_token_id=minted.pk)
        for i, ip in enumerate(addresses)
    ]
    # The same addresses again, a call with none, and another token's address: still one short.
    usage_write(
        first
        + [call(key, at + timedelta(minutes=1), ip=addresses[0], client_token_id=minted.pk)]
        + [call(key, at + timedelta(minutes=2), ip=None, client_token_id=minted.pk)]
        + [call(key, at + timedelta(minutes=3), ip="192.0.2.200", client_token_id=other.pk)]
    )
    assert run() == []


def test_a_client_token_from_exactly_the_limit_of_addresses_is_flagged_from_first_to_last_call(
    key, project
):
    minted, _ = client_token_create(project=project, api_key=key, context={})
    first = NOW - timedelta(minutes=40, seconds=13)
    usage_write(
        [
            call(key, first + timedelta(minutes=i), ip=f"198.51.100.{i}", client_token_id=minted.pk)
            for i in range(1, CLIENT_TOKEN_MAX_IPS)
        ]
    )
    assert run() == []
    last = NOW - timedelta(minutes=2, seconds=41)
    usage_write([call(key, last, ip="192.0.2.5", client_token_id=minted.pk)])
    [flag] = run()
    assert (flag.kind, flag.client_token, flag.api_key) == (
        Flag.Kind.CLIENT_TOKEN_MANY_IPS,
        minted,
        key,
    )
    assert flag.evidence["count"] == CLIENT_TOKEN_MAX_IPS
    assert (flag.first_seen, flag.last_seen) == (first + timedelta(minutes=1), last)


def test_a_client_tokens_addresses_count_over_its_whole_life(key, project):
    """No window: a client token lives a day at most (CLIENT_TOKEN_MAX_TTL), so addresses
    hours apart are the same browser's token handed round."""
    minted, _ = client_token_create(project=project, api_key=key, context={})
    times = [NOW - timedelta(hours=20 - 5 * i) for i in range(CLIENT_TOKEN_MAX_IPS)]
    for i, at in enumerate(times):
        usage_write([call(key, at, ip=f"198.51.{i}.9", client_token_id=minted.pk)])
    [flag] = run()
    assert flag.kind == Flag.Kind.CLIENT_TOKEN_MANY_IPS
    assert (flag.first_seen, flag.last_seen) == (times[0], times[-1])


# -- unused_key: an active key with no successful call for more than UNUSED_AFTER --------

CUTOFF = CHECKED - UNUSED_AFTER


def old(key: ApiKey) -> ApiKey:
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(days=200))
    return key


def test_a_key_last_used_a_second_short_of_ninety_days_ago_is_not_flagged(key):
    usage_write([call(old(key), CUTOFF + SECOND)])
    assert run() == []


def test_a_key_last_used_exactly_ninety_days_ago_is_not_flagged_yet(key):
    """Unused for more than UNUSED_AFTER: at the very instant, not yet."""
    usage_write([call(old(key), CUTOFF)])
    assert run() == []


def test_a_key_last_used_a_second_over_ninety_days_ago_is_flagged_since_that_call(key):
    last = CUTOFF - SECOND
    usage_write([call(old(key), last - timedelta(days=3))])
    usage_write([call(key, last)])
    [flag] = run()
    assert (flag.kind, flag.severity, flag.api_key) == (
        Flag.Kind.UNUSED_KEY,
        Flag.Severity.LOW,
        key,
    )
    assert (flag.first_seen, flag.last_seen) == (last, CHECKED)


def test_a_call_within_a_minute_of_the_last_marked_one_still_counts_as_use(key):
    """The key's "last used" is marked at most once a minute (usage/writer.py): a key
    whose real last call is inside the ninety days is not unused, whatever the mark says."""
    usage_write([call(old(key), CUTOFF - timedelta(seconds=20))])
    usage_write([call(key, CUTOFF + timedelta(seconds=10))])
    assert run() == []


def test_an_unused_key_says_it_is_unused_since_its_real_last_call(key):
    usage_write([call(old(key), CUTOFF - timedelta(seconds=50))])
    usage_write([call(key, CUTOFF - timedelta(seconds=20))])
    [flag] = run()
    assert flag.kind == Flag.Kind.UNUSED_KEY
    assert flag.first_seen == CUTOFF - timedelta(seconds=20)
    assert flag.evidence["last_used"] == (CUTOFF - timedelta(seconds=20)).isoformat()


def test_refused_calls_and_its_client_tokens_calls_are_not_the_keys_own_use(key, project):
    minted, _ = client_token_create(project=project, api_key=key, context={})
    last = CUTOFF - timedelta(minutes=5)
    usage_write([call(old(key), last)])
    usage_write(
        [
            call(key, NOW - timedelta(days=1), status=403, error_code="insufficient_permissions"),
            call(key, NOW - timedelta(days=1), client_token_id=minted.pk),
        ]
    )
    [flag] = run()
    assert (flag.kind, flag.first_seen) == (Flag.Kind.UNUSED_KEY, last)


def test_a_first_call_whose_mark_was_skipped_still_counts_as_use(key):
    """The ingest skips the "last used" mark while another transaction holds the key's row
    (an expiry reminder being mailed): the log has the call."""
    usage_write([call(old(key), CUTOFF + SECOND)])
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=None, last_used_ip=None)
    assert run() == []


def test_a_key_never_used_is_flagged_a_second_past_ninety_days_from_its_creation(
    key, make_key, project
):
    ApiKey.objects.filter(pk=key.pk).update(created_at=CUTOFF)
    newer, _ = make_key(project, name="Newer")
    ApiKey.objects.filter(pk=newer.pk).update(created_at=CUTOFF + SECOND)
    older, _ = make_key(project, name="Older")
    ApiKey.objects.filter(pk=older.pk).update(created_at=CUTOFF - SECOND)
    [flag] = run()
    assert (flag.kind, flag.api_key) == (Flag.Kind.UNUSED_KEY, older)
    assert (flag.first_seen, flag.last_seen) == (CUTOFF - SECOND, CHECKED)


# -- blocked_network: a key's own network allowlist refused a call (403 ip_not_allowed) -----


def outside(key: ApiKey, at: datetime, **fields: Any) -> UsageEntry:
    return call(key, at, status=403, error_code="ip_not_allowed", **fields)


def test_refusals_that_are_not_a_keys_allowlist_raise_no_blocked_network(key, project):
    minted, _ = client_token_create(project=project, api_key=key, context={})
    at = NOW - timedelta(minutes=10)
    usage_write(
        [
            call(key, at, status=403, error_code="insufficient_permissions", ip="192.0.2.9"),
            call(key, at, status=401, error_code="suspended_api_key", ip="192.0.2.9"),
            # A client token's own allowlist: the browser's matter, not the key's secret.
            outside(key, at, ip="192.0.2.9", client_token_id=minted.pk),
        ]
    )
    assert run() == []


def test_a_single_refusal_by_the_allowlist_is_flagged_at_that_call(key):
    at = NOW - timedelta(minutes=7, seconds=31)
    usage_write([outside(key, at, ip="192.0.2.9")])
    [flag] = run()
    assert (flag.kind, flag.severity, flag.api_key) == (
        Flag.Kind.BLOCKED_NETWORK,
        Flag.Severity.HIGH,
        key,
    )
    assert (flag.first_seen, flag.last_seen, flag.occurrences) == (at, at, 1)
    assert flag.evidence["ips"] == ["192.0.2.9"]


def test_the_alerts_link_lists_the_refused_calls_not_the_keys_ordinary_ones(key, signed_in):
    at = NOW - timedelta(minutes=5)
    ordinary = [call(key, at + timedelta(seconds=s), ip="203.0.113.10") for s in range(40)]
    refused = [outside(key, at + timedelta(seconds=s), ip="192.0.2.9") for s in range(0, 40, 8)]
    usage_write(ordinary + refused)
    [flag] = run()
    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert [(r.ip, r.error_code) for r in rows] == [("192.0.2.9", "ip_not_allowed")] * 5


def test_the_alert_email_links_to_the_alert_and_to_the_calls_behind_it(key, settings):
    from django.core import mail

    settings.DASHBOARD_URL = "https://dash.example"
    usage_write([outside(key, NOW - timedelta(minutes=5), ip="192.0.2.9")])
    [flag] = run()
    [message] = mail.outbox
    assert f"https://dash.example/projects/{key.project.slug}/alerts/#flag-{flag.pk}" in (
        message.body
    )
    assert f"https://dash.example{evidence_url(flag)}" in message.body
    assert "20 Nov 2026, 11:55:00 UTC" in message.body.split("First seen")[1].splitlines()[0]


def test_refusals_across_runs_span_the_first_and_last_and_are_never_a_burst(key):
    first = NOW - timedelta(minutes=9, seconds=58)
    usage_write([outside(key, first + i * timedelta(seconds=10)) for i in range(25)])
    [flag] = run()  # 25 refusals in ten minutes: their own alert, not an auth burst
    assert flag.kind == Flag.Kind.BLOCKED_NETWORK
    last = NOW - timedelta(seconds=3)
    usage_write([outside(key, last)])
    [flag] = run()
    assert (flag.first_seen, flag.last_seen, flag.occurrences) == (first, last, 26)


def test_refusals_read_before_an_acknowledgement_do_not_raise_the_alert_again(key, user):
    usage_write([outside(key, NOW - timedelta(minutes=3))])
    [flag] = run()
    Flag.objects.filter(pk=flag.pk).update(acknowledged_at=NOW, acknowledged_by=user)
    assert run() == [Flag.objects.get(pk=flag.pk)]  # no second, open one


def test_an_alert_last_seen_at_the_calendars_last_second_leaves_the_alerts_page_answering(
    key, signed_in
):
    """The detector reads calls within an hour of its clock, but a flag's times are what
    its row holds (a restore, an import, a host's clock far off when it ran): one last
    seen at 9999-12-31T23:59:59.5Z had a link to its calls ending a second after that,
    which overflowed, and the Alerts page answered 500 to every member of the project."""
    usage_write([outside(key, NOW - timedelta(minutes=5), ip="192.0.2.9")])
    [flag] = run()
    last_second = datetime.max.replace(tzinfo=UTC, microsecond=500_000)
    Flag.objects.filter(pk=flag.pk).update(last_seen=last_second)
    flag.refresh_from_db()
    page = signed_in.get(reverse("alerts:flag_list", args=[key.project.slug]))
    assert page.status_code == 200
    # The link lists the calls from the first on, to the log's end.
    link = evidence_url(flag)
    assert link is not None and "since=2026-11-20T11%3A55" in link and "until" not in link
