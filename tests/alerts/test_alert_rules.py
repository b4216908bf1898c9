"""Issue 14, point 6: a project's own alert rules. Each tuned number takes effect at its
edge, as the defaults do in test_detection.py and test_alert_kind_edges.py (whose helpers
these reuse); a project's rules never touch another project's detection; a project
without rules, or with a row of empty values, is checked with the defaults; a kind turned
off raises nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from accounts.models import Project
from alerts.models import AlertRules, Flag
from alerts.rules import SWITCHABLE
from apikeys.models import ApiKey
from apikeys.services import client_token_create
from tests.alerts import test_detection
from tests.alerts.test_alert_kind_edges import CHECKED, HOME, SECOND, START, old, outside
from tests.alerts.test_detection import NOW, call, refused, run, steady
from usage.writer import usage_write

key = test_detection.key  # the fixture: a key made thirty days before NOW


def rules(project: Project, **values: Any) -> AlertRules:
    return AlertRules.objects.create(project=project, **values)


@pytest.fixture
def theirs(make_user, make_key) -> ApiKey:
    """A key of another project, with its own owner, made thirty days before NOW."""
    owner = make_user(email="other-owner@example.com")
    their_key, _ = make_key(Project.objects.for_user(owner).get(), name="Theirs")
    ApiKey.objects.filter(pk=their_key.pk).update(created_at=NOW - timedelta(days=30))
    their_key.refresh_from_db()
    return their_key


# -- auth_failure_burst -------------------------------------------------------------------


def test_a_tuned_burst_needs_its_own_count_within_its_own_window(key, make_key, project):
    rules(project, burst_failures=5, burst_minutes=2)
    usage_write([refused(key, NOW - timedelta(minutes=1) + i * SECOND) for i in range(4)])
    assert run() == []
    spread, _ = make_key(project, name="Spread")
    start = NOW - timedelta(minutes=20)
    # The first and the last are two minutes and a second apart: never 5 in one window.
    usage_write([refused(spread, start + i * timedelta(seconds=121 / 4)) for i in range(5)])
    assert run() == []
    usage_write([refused(key, NOW - timedelta(seconds=5))])
    [flag] = run()
    assert (flag.kind, flag.api_key, flag.evidence["count"]) == (
        Flag.Kind.AUTH_FAILURE_BURST,
        key,
        5,
    )
    assert "5 times in 2 minutes" in flag.summary


def test_a_higher_burst_threshold_lets_the_default_burst_pass(key, project):
    rules(project, burst_failures=21)
    usage_write([refused(key, NOW - timedelta(minutes=5) + i * SECOND) for i in range(20)])
    assert run() == []
    usage_write([refused(key, NOW - timedelta(minutes=4))])
    assert [f.kind for f in run()] == [Flag.Kind.AUTH_FAILURE_BURST]


# -- volume_spike ---------------------------------------------------------------------------


def test_a_tuned_spike_needs_its_own_factor_and_minimum(key, project):
    rules(project, spike_factor=2, spike_min_calls=10)
    ordinary = steady(key, days=2)  # six calls an hour: twice that is 12, over the minimum
    usage_write(ordinary)
    hour = NOW - timedelta(hours=1)
    in_hour = sum(1 for e in ordinary if hour <= e.created_at < hour + timedelta(hours=1))
    usage_write([call(key, hour + timedelta(seconds=5 + s)) for s in range(11 - in_hour)])
    assert [f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE] == []
    usage_write([call(key, hour + timedelta(minutes=30))])
    [flag] = [f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE]
    assert flag.evidence["count"] == 12


def test_a_tuned_spike_minimum_holds_even_over_the_factor(key, project):
    rules(project, spike_min_calls=200)
    usage_write(steady(key, days=2))
    hour = NOW - timedelta(hours=1)
    usage_write([call(key, hour + timedelta(seconds=s * 10)) for s in range(150)])
    assert [f for f in run() if f.kind == Flag.Kind.VOLUME_SPIKE] == []


# -- new_network ----------------------------------------------------------------------------


def test_a_tuned_learning_period_ends_at_its_own_edge(key, project):
    rules(project, new_network_grace_hours=2)
    usage_write([call(key, START, ip=HOME)])
    usage_write([call(key, START + timedelta(hours=2), ip="198.51.100.7")])
    assert run() == []
    first = START + timedelta(hours=2) + SECOND
    usage_write([call(key, first, ip="192.0.2.7")])
    [flag] = run()
    assert (flag.kind, flag.evidence["network"], flag.first_seen) == (
        Flag.Kind.NEW_NETWORK,
        "192.0.2.0/24",
        first,
    )


# -- client_token_many_ips ----------------------------------------------------------------


def test_a_tuned_address_limit_flags_a_client_token_at_exactly_it(key, project):
    rules(project, client_token_max_ips=2)
    minted, _ = client_token_create(project=project, api_key=key, context={})
    usage_write(
        [call(key, NOW - timedelta(minutes=9), ip="198.51.100.1", client_token_id=minted.pk)]
    )
    assert run() == []
    usage_write(
        [call(key, NOW - timedelta(minutes=8), ip="198.51.100.2", client_token_id=minted.pk)]
    )
    [flag] = run()
    assert (flag.kind, flag.evidence["count"]) == (Flag.Kind.CLIENT_TOKEN_MANY_IPS, 2)


# -- unused_key -----------------------------------------------------------------------------


def test_a_tuned_unused_period_flags_a_key_a_second_past_it(key, make_key, project):
    rules(project, unused_days=7)
    cutoff = CHECKED - timedelta(days=7)
    usage_write([call(old(key), cutoff)])
    recent, _ = make_key(project, name="Recent")
    usage_write([call(old(recent), cutoff + SECOND)])
    assert run() == []  # exactly seven days, and less: not yet
    stale, _ = make_key(project, name="Stale")
    usage_write([call(old(stale), cutoff - SECOND)])
    [flag] = run()
    assert (flag.kind, flag.api_key, flag.first_seen) == (
        Flag.Kind.UNUSED_KEY,
        stale,
        cutoff - SECOND,
    )
    assert "a long time" in flag.get_kind_display()


def test_a_longer_unused_period_spares_a_key_the_default_would_flag(key, project):
    rules(project, unused_days=365)
    usage_write([call(old(key), CHECKED - timedelta(days=91))])
    assert run() == []


# -- Projects apart, defaults, kinds off --------------------------------------------------


def test_one_projects_rules_never_change_another_projects_detection(key, project, theirs, make_key):
    rules(project, burst_failures=3, unused_days=7, off=[Flag.Kind.NEW_NETWORK])
    both = [key, theirs]
    # Three refusals: a burst by our rules, nothing by the defaults theirs keep.
    usage_write(
        [refused(k, NOW - timedelta(minutes=3) + i * SECOND) for k in both for i in range(3)]
    )
    # Unused for thirty days: ours by our rules, not theirs.
    idle = [make_key(k.project, name="Idle")[0] for k in both]
    ApiKey.objects.filter(pk__in=[k.pk for k in idle]).update(
        created_at=NOW - timedelta(days=200), last_used_at=NOW - timedelta(days=30)
    )
    # A new network after the first day: off for us, still on for them.
    for k in both:
        usage_write([call(k, START, ip=HOME)])
        usage_write([call(k, NOW - timedelta(minutes=2), ip="198.51.100.7")])
    found = {(f.api_key_id, f.kind) for f in run()}
    assert found == {
        (key.pk, Flag.Kind.AUTH_FAILURE_BURST),
        (idle[0].pk, Flag.Kind.UNUSED_KEY),
        (theirs.pk, Flag.Kind.NEW_NETWORK),
    }


def test_a_rules_row_with_no_values_is_the_defaults(key, make_key, project):
    rules(project)
    usage_write([refused(key, NOW - timedelta(minutes=9) + i * SECOND) for i in range(19)])
    assert run() == []
    usage_write([refused(key, NOW - timedelta(seconds=30))])
    [flag] = run()
    assert (flag.kind, flag.evidence["count"]) == (Flag.Kind.AUTH_FAILURE_BURST, 20)
    assert "in 10 minutes" in flag.summary


def test_a_kind_turned_off_raises_nothing_and_the_others_still_do(key, project):
    rules(project, off=list(SWITCHABLE))
    minted, _ = client_token_create(project=project, api_key=key, context={})
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=NOW - timedelta(days=200))
    usage_write(steady(key, days=2))
    hour = NOW - timedelta(hours=1)
    usage_write(
        [call(key, hour + timedelta(seconds=s * 10)) for s in range(150)]  # a spike
        + [refused(key, NOW - timedelta(minutes=5) + i * SECOND) for i in range(25)]  # a burst
        + [call(key, NOW - timedelta(minutes=3), ip="192.0.2.50")]  # a new network
        + [
            call(key, NOW - timedelta(minutes=2), ip=f"198.51.{i}.9", client_token_id=minted.pk)
            for i in range(10)
        ]  # a client token from ten addresses
        + [outside(key, NOW - timedelta(minutes=1), ip="192.0.2.9")]  # always on
    )
    assert [f.kind for f in run()] == [Flag.Kind.BLOCKED_NETWORK]


def test_a_kind_turned_back_on_flags_only_networks_new_since(key, project):
    """Networks are still learnt while new_network is off: turning it on again does not
    flag every network the key used in between."""
    row = rules(project, off=[Flag.Kind.NEW_NETWORK])
    usage_write([call(key, START, ip=HOME)])
    usage_write([call(key, NOW - timedelta(hours=3), ip="198.51.100.7")])
    assert run() == []
    row.off = []
    row.save()
    usage_write([call(key, NOW - timedelta(minutes=1), ip="198.51.100.8")])  # known /24
    assert run() == []
    usage_write([call(key, NOW - timedelta(seconds=30), ip="192.0.2.1")])
    assert [f.kind for f in run()] == [Flag.Kind.NEW_NETWORK]


@pytest.mark.parametrize("off", [[5], [None, "no_such_kind"], [{"unused_key": True}]])
def test_a_hand_edited_list_of_kinds_off_stops_no_one_elses_unused_keys(key, project, theirs, off):
    """`off` is a JSON list that only the form writes; a row edited by hand to hold a
    number made the unused-key check fail for every project, every run. The database
    now refuses anything but a list there (alerts/migrations/0017); what the list holds
    is still read as the form would write it."""
    rules(project, off=off)
    ApiKey.objects.filter(pk__in=[key.pk, theirs.pk]).update(
        created_at=NOW - timedelta(days=200), last_used_at=NOW - timedelta(days=100)
    )
    flagged = {(f.api_key_id, f.kind) for f in run()}
    assert flagged == {(key.pk, Flag.Kind.UNUSED_KEY), (theirs.pk, Flag.Kind.UNUSED_KEY)}
