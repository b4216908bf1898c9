"""A key's count of calls from one address (UsageIp: requests, admitted) is kept for as long
as the address keeps calling, across every retention cut-off, so it grows without end. It
was a 32-bit integer: on PostgreSQL, once a busy server's address had made 2,147,483,647
calls with its key (a year at 70 calls a second), or a bot had hammered a leaked key that
many times from one address (refusals and 429s are logged and counted too), each batch
holding another of its calls broke the column's range. The ingest wrote such a batch in
halves down to each of those calls and dropped them: the key's calls from that address
went missing from its log and from detection, and every batch they were in cost the
other tenants' calls of it a transaction each. The counts are now 64-bit."""

from __future__ import annotations

from dataclasses import replace

from django.utils import timezone

from accounts.models import Project
from core.write_behind import Buffer, Record
from tests.conftest import usage_call
from usage.models import ProjectAddressDay, ProjectUsageDay, UsageDrop, UsageIp, UsageRecord
from usage.writer import usage_write

LARGEST_32_BIT = 2**31 - 1


def test_an_address_past_two_billion_calls_is_still_counted_and_its_calls_logged(
    api_key, make_user, make_key
):
    key, _ = api_key
    neighbour = make_user(email="neighbour@example.com")
    theirs, _ = make_key(Project.objects.for_user(neighbour).get(), name="Theirs")
    usage_write([usage_call(timezone.now(), key=key, ip="198.51.100.7")])
    UsageIp.objects.filter(api_key=key).update(requests=LARGEST_32_BIT, admitted=LARGEST_32_BIT)

    buffer = Buffer()
    calls = [
        replace(usage_call(timezone.now(), key=key, ip="198.51.100.7"), request_id="req_mine"),
        replace(usage_call(timezone.now(), key=theirs), request_id="req_theirs"),
    ]
    buffer._records = [Record("usage", call.payload()) for call in calls]

    assert buffer.flush() == 2
    assert not UsageDrop.objects.exists()
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) >= {
        "req_mine",
        "req_theirs",
    }
    counted = UsageIp.objects.get(api_key=key)
    assert (counted.requests, counted.admitted) == (LARGEST_32_BIT + 1, LARGEST_32_BIT + 1)


def test_a_day_of_one_groups_calls_past_two_billion_is_still_counted_and_logged(
    api_key, make_user, make_key
):
    """The per-day roll-ups of a project's calls (by key and outcome, and by address) were
    32-bit: 2,147,483,647 calls of one group in a UTC day is 25,000 a second all day, a
    flood on one key. On PostgreSQL each later batch broke the column's range, and the
    ingest dropped those calls from the log, as it did for the address counts above."""
    key, _ = api_key
    neighbour = make_user(email="neighbour@example.com")
    theirs, _ = make_key(Project.objects.for_user(neighbour).get(), name="Theirs")
    usage_write([usage_call(timezone.now(), key=key, ip="198.51.100.7")])
    ProjectUsageDay.objects.filter(api_key=key).update(
        requests=LARGEST_32_BIT, without_address=LARGEST_32_BIT
    )
    ProjectAddressDay.objects.filter(ip="198.51.100.7").update(requests=LARGEST_32_BIT)

    buffer = Buffer()
    calls = [
        replace(usage_call(timezone.now(), key=key, ip="198.51.100.7"), request_id="req_mine"),
        replace(usage_call(timezone.now(), key=theirs), request_id="req_theirs"),
    ]
    buffer._records = [Record("usage", call.payload()) for call in calls]

    assert buffer.flush() == 2
    assert not UsageDrop.objects.exists()
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) >= {
        "req_mine",
        "req_theirs",
    }
    assert ProjectUsageDay.objects.get(api_key=key).requests == LARGEST_32_BIT + 1
    assert ProjectAddressDay.objects.get(ip="198.51.100.7").requests == LARGEST_32_BIT + 1
