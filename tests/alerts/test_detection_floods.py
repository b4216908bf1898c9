"""One key flooding the log from new networks costs a run a bounded amount: it counts and
learns at most NEW_NETWORKS_PER_RUN new networks in a run, within a batch too; once its
alert is raised and it reached them, the run stops working out its calls' networks (its
alert says "or more"), and every other key's alerts come as before. A key learns at most
KEY_NETWORKS_KEPT networks; past them a network stays new, its alert says the memory is
full, and once that is acknowledged they are no longer reported until the key is rolled."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from accounts.models import Project
from alerts.detection import detect, new_networks
from alerts.links import evidence_note
from alerts.models import Flag, KeyNetwork
from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage.writer import UsageEntry, usage_write

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LIMIT = 10


@pytest.fixture
def keys(api_key, make_user, make_key) -> tuple[ApiKey, ApiKey]:
    """Two projects' keys in use for a month, each from its own /24."""
    flooded, _ = api_key
    other_owner = make_user(email="other-owner@example.com")
    theirs, _ = make_key(Project.objects.for_user(other_owner).get(), name="Theirs")
    ApiKey.objects.filter(pk__in=[flooded.pk, theirs.pk]).update(
        created_at=NOW - timedelta(days=30)
    )
    for key, network in ((flooded, "203.0.113.0/24"), (theirs, "198.51.100.0/24")):
        KeyNetwork.objects.create(api_key=key, network=network, first_seen=NOW - timedelta(days=20))
    return ApiKey.objects.get(pk=flooded.pk), ApiKey.objects.get(pk=theirs.pk)


def flood_ip(n: int) -> str:
    return str(ipaddress.ip_address(f"2001:db8:{n:x}::7"))  # a /48 each, as it is logged


def flood_network(n: int) -> str:
    return f"2001:db8:{n:x}::/48"


def interleaved(flooded: ApiKey, theirs: ApiKey, floods: int, their_networks: int):
    """The flood's calls, each from a new /48, with the other key's calls among them (from
    `their_networks` new /24s, then its own), the last of them after the flood."""
    entries: list[UsageEntry] = []
    start = NOW - timedelta(minutes=30)
    for n in range(floods):
        entries.append(usage_call(start + timedelta(seconds=n), key=flooded, ip=flood_ip(n)))
        if n % 3 == 2:
            theirs_n = len([e for e in entries if e.api_key_id == theirs.pk])
            ip = f"192.0.{theirs_n}.9" if theirs_n < their_networks else "198.51.100.4"
            entries.append(usage_call(start + timedelta(seconds=n), key=theirs, ip=ip))
    entries.append(usage_call(NOW - timedelta(minutes=1), key=theirs, ip="192.0.200.9"))
    return entries


def new_network_flag(key: ApiKey) -> Flag:
    return Flag.objects.get(kind=Flag.Kind.NEW_NETWORK, api_key=key)


def counting_network_of(monkeypatch) -> list[str]:
    asked: list[str] = []
    real = new_networks.network_of

    def network_of(address: str) -> str:
        asked.append(address)
        return real(address)

    monkeypatch.setattr(new_networks, "network_of", network_of)
    return asked


def test_a_flooding_key_stops_costing_the_run_once_its_alert_is_past_the_limit(keys, monkeypatch):
    """Batches of 8 rows, 6 of them the flooded key's: its first two batches work out 12
    networks and find LIMIT of them new (its alert raised), the two past the bound
    neither counted nor learnt; from the third batch on, its calls' networks are not
    even worked out, and its alert says "or more"."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = keys
    usage_write(interleaved(flooded, theirs, floods=60, their_networks=12))
    asked = counting_network_of(monkeypatch)

    detect(now=NOW, batch_size=8)

    flood_addresses = [a for a in asked if ":" in a]
    assert flood_addresses == [flood_ip(n) for n in range(12)]
    assert KeyNetwork.objects.filter(api_key=flooded).count() == 1 + LIMIT
    flag = new_network_flag(flooded)
    assert (flag.evidence["count"], flag.evidence["at_least"]) == (LIMIT, True)
    assert f"{LIMIT} or more networks it had not used before" in flag.summary
    assert flag.severity == Flag.Severity.HIGH
    assert f"from the {LIMIT} or more new networks" in evidence_note(flag)


def test_the_other_tenants_alert_is_whole_in_the_run_a_key_floods(keys, monkeypatch):
    """Its new networks (fewer than the limit) come before and after the flooded key
    stopped being read, and are every one counted, listed and learnt."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = keys
    usage_write(interleaved(flooded, theirs, floods=60, their_networks=6))

    detect(now=NOW, batch_size=8)

    flag = new_network_flag(theirs)
    assert flag.evidence["count"] == 7
    assert "at_least" not in flag.evidence
    assert flag.evidence["networks"][:2] == ["192.0.0.0/24", "192.0.1.0/24"]
    assert flag.evidence["networks"][-1] == "192.0.200.0/24"
    assert "7 networks it had not used before" in flag.summary
    assert KeyNetwork.objects.filter(api_key=theirs).count() == 1 + 7


def test_the_next_run_reads_the_flooded_keys_networks_again(keys, monkeypatch):
    """The bound is a run's: the next run learns and counts new networks afresh, up to
    the limit again, and the alert's count stays a lower bound."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = keys
    usage_write(interleaved(flooded, theirs, floods=30, their_networks=0))
    detect(now=NOW, batch_size=8)
    usage_write([usage_call(NOW, key=flooded, ip=flood_ip(n)) for n in range(100, 130)])
    asked = counting_network_of(monkeypatch)

    detect(now=NOW + timedelta(minutes=1), batch_size=8)

    assert [a for a in asked if ":" in a] == [flood_ip(n) for n in range(100, 116)]
    flag = new_network_flag(flooded)
    assert (flag.evidence["count"], flag.evidence["at_least"]) == (LIMIT + LIMIT, True)


def test_a_key_just_at_the_limit_with_nothing_unread_says_its_exact_count(keys, monkeypatch):
    """Stopping costs nothing to say: a key whose every call was read is counted exactly."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, _ = keys
    usage_write([usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(n))
                 for n in range(LIMIT)])  # fmt: skip

    detect(now=NOW, batch_size=8)

    flag = new_network_flag(flooded)
    assert flag.evidence["count"] == LIMIT and "at_least" not in flag.evidence
    assert f"{LIMIT} networks it had not used before" in flag.summary


def test_a_key_learns_at_most_key_networks_kept_and_what_is_past_them_stays_new(keys, monkeypatch):
    """Its first networks stay its own (its servers never look new); networks past the
    memory are not learnt, so each call from one is still found new. The alert counts
    each such network once it is open: seen again, it may be one it already counted, so
    its count says "or more" rather than grow."""
    monkeypatch.setattr(new_networks, "KEY_NETWORKS_KEPT", 5)
    flooded, _ = keys
    usage_write([usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(n))
                 for n in range(8)])  # fmt: skip
    detect(now=NOW)
    assert KeyNetwork.objects.filter(api_key=flooded).count() == 5
    flag = new_network_flag(flooded)
    assert flag.evidence["count"] == 8 and "at_least" not in flag.evidence

    usage_write(
        [usage_call(NOW, key=flooded, ip=ip) for ip in (flood_ip(7), flood_ip(9), "203.0.113.5")]
    )
    detect(now=NOW + timedelta(minutes=1))

    assert KeyNetwork.objects.filter(api_key=flooded).count() == 5
    flag = new_network_flag(flooded)
    assert (flag.evidence["count"], flag.evidence["at_least"]) == (8, True)
    assert "8 or more networks it had not used before" in flag.summary


def test_a_network_past_a_full_memory_can_still_be_said_to_be_ours(keys, user, monkeypatch):
    """A person's word is not the flood's: "this network is ours" is learnt whatever the
    memory holds, and the key's calls from it are then no news."""
    from alerts.services import flag_network_ours

    monkeypatch.setattr(new_networks, "KEY_NETWORKS_KEPT", 1)
    flooded, _ = keys
    usage_write([usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(1))])
    detect(now=NOW)
    flag = new_network_flag(flooded)
    assert flag.network_in_question() == "2001:db8:1::/48"

    flag_network_ours(flag=flag, by=user)

    assert KeyNetwork.objects.filter(api_key=flooded).count() == 2
    usage_write([usage_call(NOW, key=flooded, ip=flood_ip(1))])
    detect(now=NOW + timedelta(minutes=1))
    assert not Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK).open().exists()


def test_a_full_key_says_so_once_and_after_acknowledgement_its_unlearnt_networks_raise_nothing(
    keys, user, signed_in, monkeypatch
):
    """Its memory full, a key (a fleet past KEY_NETWORKS_KEPT networks, or a flood) finds
    every call from a network it could not learn new again. Its alert says the memory is
    full, and is high (emailed): once it is acknowledged, those networks are told no more,
    so a person hears it before that. Each acknowledgement was followed by a fresh alert at
    the key's next call from one."""
    from alerts.services import flag_acknowledge

    monkeypatch.setattr(new_networks, "KEY_NETWORKS_KEPT", 5)
    flooded, _ = keys
    usage_write([usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(n))
                 for n in range(8)])  # fmt: skip
    detect(now=NOW)
    flag = new_network_flag(flooded)
    assert flag.evidence["memory_full"] == 5
    assert flag.severity == Flag.Severity.HIGH
    assert "Its memory of 5 networks is full" in flag.summary
    page = signed_in.get(reverse("alerts:flag_list", args=[flooded.project.slug]))
    assert "once you acknowledge this alert" in page.content.decode()
    flag_acknowledge(flag=flag, by=user)

    usage_write([usage_call(NOW, key=flooded, ip=flood_ip(n)) for n in (7, 9, 10)])
    detect(now=NOW + timedelta(minutes=1))

    assert not Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK).open().exists()
    page = signed_in.get(reverse("alerts:flag_list", args=[flooded.project.slug]))
    assert "networks it cannot learn are no longer reported" in page.content.decode()


def test_a_full_key_still_tells_of_a_network_it_can_learn_and_of_any_once_rolled(
    keys, user, monkeypatch
):
    """The quiet is about the networks the key had no room to learn, and about its secret
    at the time: a network it can learn (its memory made larger) is told as ever, and a
    rolled key's new secret is told of once more, as a new credential."""
    from alerts.services import flag_acknowledge
    from apikeys.services import api_key_roll

    monkeypatch.setattr(new_networks, "KEY_NETWORKS_KEPT", 5)
    flooded, _ = keys
    usage_write([usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(n))
                 for n in range(8)])  # fmt: skip
    detect(now=NOW)
    flag_acknowledge(flag=new_network_flag(flooded), by=user)

    monkeypatch.setattr(new_networks, "KEY_NETWORKS_KEPT", 6)
    usage_write([usage_call(NOW, key=flooded, ip=flood_ip(n)) for n in (20, 21)])
    detect(now=NOW + timedelta(minutes=1))
    told = Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK).open().get()
    assert told.evidence["networks"] == [flood_network(20)]
    flag_acknowledge(flag=told, by=user)

    api_key_roll(api_key=flooded, by=user, overlap=timedelta(0))
    usage_write([usage_call(NOW, key=flooded, ip=flood_ip(22))])
    detect(now=NOW + timedelta(minutes=2))
    again = Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK).open().get()
    assert again.evidence["networks"] == [flood_network(22)]
    assert again.evidence["memory_full"] == 6


def test_an_alert_counting_or_more_shows_the_same_count_as_its_summary(
    keys, signed_in, monkeypatch
):
    """The "× N" beside an alert is its occurrences: a network the key could not learn,
    found again, was added there at each run while the summary's count stayed "8 or
    more", so the two drifted apart. Both are the networks counted, "or more" on both."""
    monkeypatch.setattr(new_networks, "KEY_NETWORKS_KEPT", 5)
    flooded, _ = keys
    usage_write([usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(n))
                 for n in range(8)])  # fmt: skip
    detect(now=NOW)
    for minute in (1, 2, 3):
        usage_write([usage_call(NOW, key=flooded, ip=flood_ip(n)) for n in (6, 7, 9)])
        detect(now=NOW + timedelta(minutes=minute))

    flag = new_network_flag(flooded)
    assert (flag.occurrences, flag.evidence["count"], flag.evidence["at_least"]) == (8, 8, True)
    assert "8 or more networks" in flag.summary
    page = signed_in.get(reverse("alerts:flag_list", args=[flooded.project.slug])).content
    assert "× 8 or more" in page.decode()


def test_the_bound_holds_within_a_batch(keys, monkeypatch):
    """NEW_NETWORKS_PER_RUN was checked after each batch (BATCH_SIZE rows), so a flood
    inside one batch was counted and learnt whole (9,757 networks of a 200,000-call flood,
    for a bound of 1,000). A key counts and learns at most the bound, the call past it is
    passed over and its alert says "or more"; the other tenant's alert is whole."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = keys
    usage_write(interleaved(flooded, theirs, floods=60, their_networks=6))

    detect(now=NOW)

    assert KeyNetwork.objects.filter(api_key=flooded).count() == 1 + LIMIT
    flag = new_network_flag(flooded)
    assert (flag.evidence["count"], flag.evidence["at_least"]) == (LIMIT, True)
    assert flag.occurrences == LIMIT
    assert f"{LIMIT} or more networks it had not used before" in flag.summary
    their_flag = new_network_flag(theirs)
    assert their_flag.evidence["count"] == 7 and "at_least" not in their_flag.evidence
    assert KeyNetwork.objects.filter(api_key=theirs).count() == 1 + 7


def test_a_key_at_the_bound_within_a_batch_whose_later_calls_are_known_counts_exactly(
    keys, monkeypatch
):
    """Calls after the bound from networks the key knows are no news: its count stays
    exact, as when the bound is met at the end of a batch."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, _ = keys
    usage_write(
        [usage_call(NOW - timedelta(minutes=5), key=flooded, ip=flood_ip(n)) for n in range(LIMIT)]
        + [usage_call(NOW - timedelta(minutes=4), key=flooded, ip=ip)
           for ip in (flood_ip(0), "203.0.113.5")]
    )  # fmt: skip

    detect(now=NOW)

    flag = new_network_flag(flooded)
    assert flag.evidence["count"] == LIMIT and "at_least" not in flag.evidence


@pytest.fixture
def new_key(api_key) -> ApiKey:
    """A key made half an hour ago, never used: its calls are in its learning period."""
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(created_at=NOW - timedelta(minutes=30))
    return ApiKey.objects.get(pk=key.pk)


def test_a_key_flooded_in_its_learning_period_costs_the_run_no_more(new_key, monkeypatch):
    """Its networks are learnt, not told, and had no bound: a flood in a key's first day
    was worked out and learnt whole, batch after batch. They count towards the bound
    as new ones do: the batch that reaches LIMIT learns LIMIT, and from the next batch on
    the key's calls' networks are not worked out. Nothing is raised: all is its first day."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    usage_write([usage_call(NOW - timedelta(minutes=20), key=new_key, ip=flood_ip(n))
                 for n in range(40)])  # fmt: skip
    asked = counting_network_of(monkeypatch)

    detect(now=NOW, batch_size=8)

    assert len(asked) == 16
    assert sorted(KeyNetwork.objects.filter(api_key=new_key).values_list("network", flat=True)) == (
        sorted(str(ipaddress.ip_network(flood_network(n))) for n in range(LIMIT))
    )
    assert not Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK).exists()


def test_a_key_still_learns_in_its_first_day_what_one_run_passed_over(new_key, monkeypatch):
    """The learning period is what it was for: its servers call again within it, and a
    later run learns them (up to the bound again), so past it they are no news."""
    monkeypatch.setattr(new_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    fleet = [flood_ip(n) for n in range(2 * LIMIT)]
    usage_write([usage_call(NOW - timedelta(minutes=20), key=new_key, ip=ip) for ip in fleet])
    detect(now=NOW)
    usage_write([usage_call(NOW + timedelta(hours=1), key=new_key, ip=ip) for ip in fleet])
    detect(now=NOW + timedelta(hours=1, minutes=1))
    assert KeyNetwork.objects.filter(api_key=new_key).count() == 2 * LIMIT

    usage_write([usage_call(NOW + timedelta(days=2), key=new_key, ip=ip) for ip in fleet])
    detect(now=NOW + timedelta(days=2, minutes=1))

    assert not Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK).exists()
