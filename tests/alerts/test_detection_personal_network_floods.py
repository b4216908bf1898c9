"""One personal access token flooded from new networks costs a detection run a bounded
amount, as a key does: once it passed NEW_NETWORKS_PER_RUN networks it never used in the
run, the rest of the run neither works out nor learns its calls' networks, and its person's
notice says "or more". Another person's PAT in the same batches is read and told whole."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail

from alerts import token_networks
from alerts.detection import detect, new_networks
from alerts.models import TokenNetwork
from apikeys.models import PersonalAccessToken
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.conftest import usage_call
from usage.writer import UsageEntry, usage_write

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
LIMIT = 10


@pytest.fixture
def pats(make_user) -> tuple[PersonalAccessToken, PersonalAccessToken]:
    """Two people's PATs, each used from its own network two days ago."""
    flooded, _ = personal_token_create(user=make_user(email="ada@example.com"), name="CLI")
    theirs, _ = personal_token_create(user=make_user(email="grace@example.com"), name="CI")
    usage_write(
        [usage_call(NOW - timedelta(days=2), pat=flooded, ip="203.0.113.9"),
         usage_call(NOW - timedelta(days=2), pat=theirs, ip="198.51.100.9")]
    )  # fmt: skip
    detect(now=NOW - timedelta(days=2, minutes=-1))
    mail.outbox.clear()
    return flooded, theirs


def flood_ip(n: int) -> str:
    return str(ipaddress.ip_address(f"2001:db8:{n:x}::7"))  # a /48 each, as it is logged


def interleaved(
    flooded: PersonalAccessToken, theirs: PersonalAccessToken, floods: int, their_networks: int
) -> list[UsageEntry]:
    """The flood's calls, each from a new /48, with the other PAT's calls among them (from
    `their_networks` new /24s, then its own), the last of them after the flood."""
    entries: list[UsageEntry] = []
    start = NOW - timedelta(minutes=30)
    theirs_n = 0
    for n in range(floods):
        entries.append(usage_call(start + timedelta(seconds=n), pat=flooded, ip=flood_ip(n)))
        if n % 3 == 2:
            ip = f"192.0.{theirs_n}.9" if theirs_n < their_networks else "198.51.100.4"
            entries.append(usage_call(start + timedelta(seconds=n), pat=theirs, ip=ip))
            theirs_n += 1
    entries.append(usage_call(NOW - timedelta(minutes=1), pat=theirs, ip="192.0.200.9"))
    return entries


def counting_network_around(monkeypatch) -> list[str]:
    asked: list[str] = []
    real = token_networks.network_around

    def network_around(address: str) -> str:
        asked.append(address)
        return real(address)

    monkeypatch.setattr(token_networks, "network_around", network_around)
    return asked


def notice_to(email: str) -> str:
    (sent,) = [m for m in mail.outbox if m.to == [email]]
    return sent.body


def test_a_pats_bound_per_run_is_a_keys():
    assert token_networks.NEW_NETWORKS_PER_RUN == new_networks.NEW_NETWORKS_PER_RUN


def test_a_flooded_pat_stops_costing_the_run_once_past_the_limit(pats, monkeypatch):
    """Batches of 8 rows, 6 of them the flooded PAT's: its second batch reaches LIMIT new
    networks, having worked out its 12 calls' networks; from the third batch on, its
    calls' networks are neither worked out nor learnt, and its person is told of LIMIT
    "or more"."""
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = pats
    usage_write(interleaved(flooded, theirs, floods=60, their_networks=12))
    asked = counting_network_around(monkeypatch)

    detect(now=NOW, batch_size=8)

    assert [a for a in asked if ":" in a] == [flood_ip(n) for n in range(12)]
    assert TokenNetwork.objects.filter(personal_token=flooded).count() == 1 + LIMIT
    body = notice_to("ada@example.com")
    assert f"used from {LIMIT} or more networks it had never been used from" in body
    event = AuditEvent.objects.get(action="personal_token.new_network", target_id=str(flooded.pk))
    assert (event.metadata["count"], event.metadata["at_least"]) == (LIMIT, True)


def test_the_other_persons_notice_is_whole_in_the_run_a_pat_floods(pats, monkeypatch):
    """Its new networks come before and after the flooded PAT stopped being read, and are
    every one learnt and told, its count exact."""
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = pats
    usage_write(interleaved(flooded, theirs, floods=60, their_networks=6))

    detect(now=NOW, batch_size=8)

    body = notice_to("grace@example.com")
    assert "used from 7 networks it had never been used from" in body
    assert "or more" not in body
    for network in ("192.0.0.0/24", "192.0.5.0/24", "192.0.200.0/24"):
        assert network in body
    assert TokenNetwork.objects.filter(personal_token=theirs).count() == 1 + 7


def test_the_next_run_reads_the_flooded_pats_networks_again(pats, monkeypatch):
    """The bound is a run's: the next run learns afresh, up to the limit again."""
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = pats
    usage_write(interleaved(flooded, theirs, floods=30, their_networks=0))
    detect(now=NOW, batch_size=8)
    usage_write([usage_call(NOW, pat=flooded, ip=flood_ip(n)) for n in range(100, 130)])
    asked = counting_network_around(monkeypatch)

    detect(now=NOW + timedelta(minutes=1), batch_size=8)

    assert [a for a in asked if ":" in a] == [flood_ip(n) for n in range(100, 116)]
    assert TokenNetwork.objects.filter(personal_token=flooded).count() == 1 + LIMIT + LIMIT


def test_a_pat_just_at_the_limit_with_nothing_unread_is_told_its_exact_count(pats, monkeypatch):
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, _ = pats
    usage_write([usage_call(NOW - timedelta(minutes=5), pat=flooded, ip=flood_ip(n))
                 for n in range(LIMIT)])  # fmt: skip

    detect(now=NOW, batch_size=8)

    body = notice_to("ada@example.com")
    assert f"used from {LIMIT} networks it had never been used from" in body
    assert "or more" not in body
    event = AuditEvent.objects.get(action="personal_token.new_network")
    assert event.metadata["count"] == LIMIT and "at_least" not in event.metadata


def test_a_pat_flooded_in_its_first_day_costs_the_run_no_more(make_user, monkeypatch):
    """Networks learnt in its first day are told of to nobody, but working them out costs
    the same: the bound counts every network the PAT had not used."""
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    pat, _ = personal_token_create(user=make_user(email="ada@example.com"), name="CLI")
    mail.outbox.clear()  # its "created" notice
    usage_write([usage_call(NOW - timedelta(minutes=40 - n // 10), pat=pat, ip=flood_ip(n))
                 for n in range(40)])  # fmt: skip
    asked = counting_network_around(monkeypatch)

    detect(now=NOW, batch_size=8)

    assert len(asked) == 16
    assert TokenNetwork.objects.filter(personal_token=pat).count() == LIMIT
    assert mail.outbox == []


def test_a_pats_bound_holds_within_a_batch(pats, monkeypatch):
    """The bound was checked after each batch, so a flood's first batch was learnt whole
    (9,756 networks of a batch of 10,000 rows, for a bound of 1,000): in one batch of 60
    calls from new networks the PAT learns LIMIT, and is told of them "or more"."""
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, theirs = pats
    usage_write(interleaved(flooded, theirs, floods=60, their_networks=0))

    detect(now=NOW)

    learnt = TokenNetwork.objects.filter(personal_token=flooded).exclude(network="203.0.113.0/24")
    assert sorted(learnt.values_list("network", flat=True)) == sorted(
        str(ipaddress.ip_network(f"{flood_ip(n)}/48", strict=False)) for n in range(LIMIT)
    )
    assert f"used from {LIMIT} or more networks it had never been used from" in notice_to(
        "ada@example.com"
    )
    assert "or more" not in notice_to("grace@example.com")


def test_a_pat_at_the_bound_in_a_batch_is_told_its_exact_count_without_more_calls(
    pats, monkeypatch
):
    monkeypatch.setattr(token_networks, "NEW_NETWORKS_PER_RUN", LIMIT)
    flooded, _ = pats
    usage_write([usage_call(NOW - timedelta(minutes=5), pat=flooded, ip=flood_ip(n % LIMIT))
                 for n in range(3 * LIMIT)])  # fmt: skip

    detect(now=NOW)

    body = notice_to("ada@example.com")
    assert f"used from {LIMIT} networks it had never been used from" in body
    assert "or more" not in body


class LockNotAvailable(Exception):
    """What psycopg raises at PostgreSQL's lock_timeout, as far as core.db_errors reads."""

    sqlstate = "55P03"


def test_one_pats_failing_step_costs_no_other_pat_its_learning(pats, monkeypatch):
    """PATs were learnt in one savepoint: one PAT's room-making delete running into the
    lock timeout undid every PAT's networks of the batch, and nobody was told. Now it
    costs that PAT alone (the next call from its networks finds them again): the batch's
    step fails, then that PAT's own, each counted."""
    from django.db import OperationalError

    monkeypatch.setattr(token_networks, "TOKEN_NETWORKS_KEPT", 2)
    flooded, theirs = pats

    def make_room(token_id, *args):
        error = OperationalError("canceling statement due to lock timeout")
        error.__cause__ = LockNotAvailable()
        raise error

    monkeypatch.setattr(token_networks, "_make_room", make_room)
    usage_write(
        [usage_call(NOW - timedelta(minutes=5), pat=theirs, ip="192.0.2.9")]
        + [usage_call(NOW - timedelta(minutes=4), pat=flooded, ip=flood_ip(n)) for n in range(3)]
    )

    result = detect(now=NOW)

    assert result.failures == 2
    assert TokenNetwork.objects.filter(personal_token=flooded).count() == 1
    assert TokenNetwork.objects.filter(personal_token=theirs, network="192.0.2.0/24").exists()
    assert "192.0.2.0/24" in notice_to("grace@example.com")
