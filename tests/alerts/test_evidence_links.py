"""An alert's "See the calls" link: the key's log narrowed to the alert's network (a /24 or
an IPv6 /48, as the log's address filter takes it), not to the first call's address."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.core import mail

from alerts.links import evidence_note, evidence_url
from alerts.models import Flag
from apikeys.models import ClientToken
from apikeys.services import client_token_create
from tests.alerts import test_detection
from tests.alerts.test_alert_kind_edges import outside
from tests.alerts.test_detection import NOW, call, run, steady
from usage.writer import usage_write

key = test_detection.key  # the fixture: a key made thirty days before NOW


def _query(url: str | None) -> dict[str, list[str]]:
    assert url is not None
    return parse_qs(urlsplit(url).query)


def test_a_new_networks_link_lists_the_calls_of_the_whole_network(key, signed_in):
    usage_write(steady(key, days=2))
    usage_write(
        [
            call(key, NOW - timedelta(minutes=9), ip="198.51.100.7"),
            call(key, NOW - timedelta(minutes=9) + timedelta(seconds=30), ip="198.51.100.99"),
        ]
    )
    [flag] = run()
    assert _query(evidence_url(flag))["ip"] == ["198.51.100.0/24"]
    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert sorted(r.ip for r in rows) == ["198.51.100.7", "198.51.100.99"]
    assert evidence_note(flag) == ""


def test_a_new_ipv6_networks_link_lists_its_48(key, signed_in):
    usage_write(steady(key, days=2))
    usage_write(
        [
            call(key, NOW - timedelta(minutes=9), ip="2001:db8:7:1::5"),
            call(key, NOW - timedelta(minutes=9) + timedelta(seconds=30), ip="2001:db8:7:ffff::9"),
        ]
    )
    [flag] = run()
    assert _query(evidence_url(flag))["ip"] == ["2001:db8:7::/48"]
    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert len(rows) == 2


def test_several_new_networks_link_to_all_the_keys_calls_and_say_so(key):
    usage_write(steady(key, days=2))
    usage_write(
        [
            call(key, NOW - timedelta(minutes=9), ip="198.51.100.7"),
            call(key, NOW - timedelta(minutes=8), ip="192.0.2.7"),
        ]
    )
    [flag] = run()
    assert flag.evidence["count"] == 2
    assert "ip" not in _query(evidence_url(flag))
    assert evidence_note(flag) == (
        "every call of the key itself in those minutes, from the 2 new networks and its usual ones"
    )


def test_a_new_network_alert_with_an_unreadable_address_links_without_a_network(key):
    usage_write(steady(key, days=2))
    usage_write([call(key, NOW - timedelta(minutes=9), ip="198.51.100.7")])
    [flag] = run()
    Flag.objects.filter(pk=flag.pk).update(evidence={**flag.evidence, "ips": ["not an ip"]})
    flag.refresh_from_db()
    assert "ip" not in _query(evidence_url(flag))


def test_refusals_from_one_network_link_to_that_network(key, signed_in):
    at = NOW - timedelta(minutes=5)
    usage_write(
        [
            outside(key, at, ip="192.0.2.9"),
            outside(key, at + timedelta(seconds=5), ip="192.0.2.9"),
            outside(key, at + timedelta(seconds=9), ip="192.0.2.200"),
            call(key, at + timedelta(seconds=7), ip="203.0.113.10"),
        ]
    )
    [flag] = run()
    assert flag.kind == Flag.Kind.BLOCKED_NETWORK
    query = _query(evidence_url(flag))
    assert (query["ip"], query["status"]) == (["192.0.2.0/24"], ["403"])
    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert sorted(r.ip for r in rows) == ["192.0.2.200", "192.0.2.9", "192.0.2.9"]


def test_refusals_from_several_networks_link_to_every_refusal(key, signed_in):
    at = NOW - timedelta(minutes=5)
    usage_write([outside(key, at, ip="192.0.2.9"), outside(key, at, ip="198.51.100.4")])
    [flag] = run()
    query = _query(evidence_url(flag))
    assert "ip" not in query and query["status"] == ["403"]
    assert len(signed_in.get(evidence_url(flag)).context["page"].rows) == 2


# Whose calls: each link opens the calls its check read. A new network, a new agent and an
# allowlist's refusal are the key's own calls (the checks pass over its client tokens'), so
# a browser token of the key calling from the same network in the same minutes is no part
# of them; an ended key's alert is its own refusals (its client tokens' are their own
# alerts); a client token's alerts are that token's calls.


@pytest.fixture
def browser(key, project) -> ClientToken:
    minted, _ = client_token_create(project=project, api_key=key, context={})
    return minted


def _callers(signed_in, flag: Flag) -> list[tuple[int | None, str | None]]:
    response = signed_in.get(evidence_url(flag))
    assert response.status_code == 200
    return sorted((r.client_token_id or 0, r.ip) for r in response.context["page"].rows)


def test_a_new_networks_link_leaves_out_the_keys_client_tokens_calls(key, browser, signed_in):
    usage_write(steady(key, days=2))
    at = NOW - timedelta(minutes=9)
    usage_write(
        [
            call(key, at, ip="198.51.100.7"),
            call(key, at + timedelta(seconds=20), ip="198.51.100.8", client_token_id=browser.pk),
            call(key, at + timedelta(seconds=40), ip="198.51.100.7", client_token_id=browser.pk),
        ]
    )
    [flag] = run()
    assert flag.kind == Flag.Kind.NEW_NETWORK
    assert _query(evidence_url(flag))["caller"] == ["key"]
    assert _callers(signed_in, flag) == [(0, "198.51.100.7")]


def test_several_new_networks_link_to_the_keys_own_calls_only(key, browser, signed_in):
    usage_write(steady(key, days=2))
    at = NOW - timedelta(minutes=9)
    usage_write(
        [
            call(key, at, ip="198.51.100.7"),
            call(key, at + timedelta(minutes=1), ip="192.0.2.7"),
            call(key, at + timedelta(seconds=30), ip="192.0.2.7", client_token_id=browser.pk),
        ]
    )
    [flag] = run()
    assert flag.evidence["count"] == 2
    assert _callers(signed_in, flag) == [(0, "192.0.2.7"), (0, "198.51.100.7")]


def test_a_new_agents_link_leaves_out_the_keys_client_tokens_calls(key, browser, signed_in):
    usage_write(steady(key, days=2))
    run()
    at = NOW - timedelta(minutes=3)
    usage_write(
        [
            call(key, at, agent="payroll-admin"),
            call(key, at + timedelta(seconds=5), agent="payroll-admin", client_token_id=browser.pk),
        ]
    )
    [flag] = run()
    assert flag.kind == Flag.Kind.NEW_AGENT
    assert _callers(signed_in, flag) == [(0, "203.0.113.10")]


def test_an_allowlist_refusals_link_leaves_out_the_client_tokens_refusals(key, browser, signed_in):
    at = NOW - timedelta(minutes=5)
    usage_write(
        [
            outside(key, at, ip="192.0.2.9"),
            # The browser token's own allowlist refused it: not the key's finding.
            outside(key, at + timedelta(seconds=3), ip="192.0.2.10", client_token_id=browser.pk),
        ]
    )
    [flag] = run()
    assert flag.kind == Flag.Kind.BLOCKED_NETWORK
    assert _callers(signed_in, flag) == [(0, "192.0.2.9")]


def _refused(key, at, ip, **fields):
    return call(key, at, status=401, error_code="expired_api_key", ip=ip, **fields)


def test_an_ended_keys_link_opens_its_own_refusals_and_its_tokens_link_the_tokens(
    key, browser, signed_in
):
    """The key revoked, then tried, and its browser token too (refused as its key ended):
    two alerts, the key's and the token's, each linking to the refusals that raised it."""
    key.revoke(by=None)
    at = NOW - timedelta(minutes=3)
    usage_write(
        [
            _refused(key, at, "192.0.2.66"),
            _refused(key, at + timedelta(seconds=5), "192.0.2.66", client_token_id=browser.pk),
            _refused(key, at + timedelta(seconds=9), "198.51.100.3", client_token_id=browser.pk),
        ]
    )
    flags = {flag.client_token_id: flag for flag in run()}
    assert set(flags) == {None, browser.pk}
    assert _query(evidence_url(flags[None]))["caller"] == ["key"]
    assert _callers(signed_in, flags[None]) == [(0, "192.0.2.66")]
    assert _query(evidence_url(flags[browser.pk]))["caller"] == ["client_tokens"]
    assert _callers(signed_in, flags[browser.pk]) == [
        (browser.pk, "192.0.2.66"),
        (browser.pk, "198.51.100.3"),
    ]


def test_a_burst_of_refusals_links_to_the_key_and_its_client_tokens(key, browser, signed_in):
    """The burst check counts every failure under the key, its client tokens' included
    (volume spikes, and so signs together, count both as well): both kinds stay in the link."""
    at = NOW - timedelta(minutes=5)
    failures = [
        call(
            key,
            at + timedelta(seconds=s),
            status=403,
            error_code="insufficient_permissions",
            ip="192.0.2.50",
            **({"client_token_id": browser.pk} if s % 2 else {}),
        )
        for s in range(20)
    ]
    usage_write(failures)
    [flag] = run()
    assert flag.kind == Flag.Kind.AUTH_FAILURE_BURST
    assert "caller" not in _query(evidence_url(flag))
    assert len(_callers(signed_in, flag)) == 20


def test_an_older_alerts_evidence_still_opens_the_keys_own_calls(key, browser, signed_in):
    """Evidence never held a caller (the link reads it from the alert's kind), so an alert
    raised before this, with the least an older detector wrote (its addresses, no count),
    opens the key's own calls, and a caller put in its evidence by hand is not read."""
    usage_write(steady(key, days=2))
    at = NOW - timedelta(minutes=9)
    usage_write(
        [
            call(key, at, ip="198.51.100.7"),
            call(key, at + timedelta(seconds=20), ip="198.51.100.7", client_token_id=browser.pk),
        ]
    )
    [flag] = run()
    old = {"ips": ["198.51.100.7"], "caller": "client_tokens"}
    Flag.objects.filter(pk=flag.pk).update(evidence=old)
    flag.refresh_from_db()
    assert _query(evidence_url(flag))["caller"] == ["key"]
    assert _callers(signed_in, flag) == [(0, "198.51.100.7")]


def test_the_alert_emails_link_to_the_calls_of_their_own_caller(key, browser, signed_in):
    """The emails about an ended key and about its browser token, both tried: each one's
    "calls behind it" opens that alert's refusals, not the other's."""
    key.revoke(by=None)
    at = NOW - timedelta(minutes=3)
    usage_write(
        [
            _refused(key, at, "192.0.2.66"),
            _refused(key, at + timedelta(seconds=5), "198.51.100.3", client_token_id=browser.pk),
        ]
    )
    run()
    links = [
        line.split(": ", 1)[1].removeprefix(settings.DASHBOARD_URL.rstrip("/"))
        for message in mail.outbox
        for line in message.body.splitlines()
        if line.startswith("The calls behind it")
    ]
    assert len(links) == 2
    shown = {}
    for link in links:
        rows = signed_in.get(link).context["page"].rows
        shown[_query(link)["caller"][0]] = [(r.client_token_id, r.ip) for r in rows]
    assert shown == {"key": [(None, "192.0.2.66")], "client_tokens": [(browser.pk, "198.51.100.3")]}
