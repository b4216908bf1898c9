"""An alert's "See the calls" link: the key's log narrowed to the alert's network (a /24 or
an IPv6 /48, as the log's address filter takes it), not to the first call's address."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from alerts.links import evidence_note, evidence_url
from alerts.models import Flag
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
        "every call of the key in those minutes, from the 2 new networks and its usual ones"
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
