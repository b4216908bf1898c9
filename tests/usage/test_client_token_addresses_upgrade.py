"""usage/0010 tells the addresses a key already has apart by the calls the log still holds:
an address whose calls in the log all came through client tokens is theirs, one with
both kinds is split, and one the log has only the key's own calls from stays the key's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey
from apikeys.services import client_token_create
from tests.migration_state import migrated_back, migrated_to_the_end
from usage.models import UsageIp

BEFORE = ("usage", "0009_agent_indexes")


@pytest.mark.django_db(transaction=True)
def test_the_upgrade_sorts_the_keys_addresses_by_the_calls_in_the_log(
    project: Project, api_key: tuple[ApiKey, str]
) -> None:
    key = api_key[0]
    minted, _ = client_token_create(project=project, api_key=key, context={})
    now = timezone.now().replace(microsecond=0)
    days = [now - timedelta(days=d) for d in range(10)]
    old = migrated_back([BEFORE])
    try:
        record = old.get_model("usage", "UsageRecord")
        address = old.get_model("usage", "UsageIp")
        n = iter(range(100))

        def call(at, ip, *, via_token: bool = False) -> None:
            record.objects.create(
                created_at=at,
                project_id=project.pk,
                api_key_id=key.pk,
                client_token_id=minted.pk if via_token else None,
                token_kind="client_token" if via_token else "api_key",
                method="POST",
                path="/v1/agents/my-agent/invoke",
                status=200,
                outcome="ok",
                latency_us=1500,
                ip=ip,
                request_id=f"req_{next(n):024d}",
            )

        def seen(ip, first, last, requests) -> None:
            address.objects.create(
                project_id=project.pk,
                api_key_id=key.pk,
                ip=ip,
                first_seen=first,
                last_seen=last,
                requests=requests,
            )

        # The server: its own calls only; 5 more before the log's retention.
        call(days[2], "203.0.113.7")
        call(days[1], "203.0.113.7")
        seen("203.0.113.7", days[9], days[1], 7)
        # A browser: calls through the token only.
        call(days[3], "198.51.100.23", via_token=True)
        call(days[0], "198.51.100.23", via_token=True)
        seen("198.51.100.23", days[3], days[0], 2)
        # The office: the key's own call, then two through the token; 4 older calls.
        call(days[4], "192.0.2.10")
        call(days[2], "192.0.2.10", via_token=True)
        call(days[1], "192.0.2.10", via_token=True)
        seen("192.0.2.10", days[8], days[1], 7)
        # An address whose calls are all past the log: as it was, the key's.
        seen("192.0.2.99", days[9], days[9], 3)
    finally:
        migrated_to_the_end()

    rows = {
        (r.ip, r.via_client_tokens): (r.first_seen, r.last_seen, r.requests)
        for r in UsageIp.objects.filter(api_key=key)
    }
    assert rows == {
        ("203.0.113.7", False): (days[9], days[1], 7),
        ("198.51.100.23", True): (days[3], days[0], 2),
        ("192.0.2.10", False): (days[8], days[4], 5),
        ("192.0.2.10", True): (days[2], days[1], 2),
        ("192.0.2.99", False): (days[9], days[9], 3),
    }


@pytest.mark.django_db(transaction=True)
def test_the_downgrade_adds_the_client_tokens_rows_back_to_the_keys(
    project: Project, api_key: tuple[ApiKey, str]
) -> None:
    key = api_key[0]
    now = timezone.now().replace(microsecond=0)
    days = [now - timedelta(days=d) for d in range(10)]

    def seen(ip, via, first, last, requests) -> None:
        UsageIp.objects.create(
            project=project,
            api_key=key,
            ip=ip,
            via_client_tokens=via,
            first_seen=first,
            last_seen=last,
            requests=requests,
        )

    seen("192.0.2.10", False, days[8], days[4], 5)
    seen("192.0.2.10", True, days[2], days[1], 2)
    seen("198.51.100.23", True, days[3], days[0], 2)
    seen("203.0.113.7", False, days[9], days[1], 7)
    old = migrated_back([BEFORE])
    try:
        address = old.get_model("usage", "UsageIp")
        rows = {
            r.ip: (r.first_seen, r.last_seen, r.requests)
            for r in address.objects.filter(api_key_id=key.pk)
        }
    finally:
        migrated_to_the_end()
    assert rows == {
        "192.0.2.10": (days[8], days[1], 7),
        "198.51.100.23": (days[3], days[0], 2),
        "203.0.113.7": (days[9], days[1], 7),
    }


@pytest.mark.django_db(transaction=True)
def test_the_addresses_already_there_count_as_admitted_whole(
    project: Project, api_key: tuple[ApiKey, str]
) -> None:
    """usage/0011: which of their calls were refused only the log knows; they stay offered
    as they were before it."""
    key = api_key[0]
    now = timezone.now().replace(microsecond=0)
    old = migrated_back([("usage", "0010_usageip_via_client_tokens")])
    try:
        old.get_model("usage", "UsageIp").objects.create(
            project_id=project.pk,
            api_key_id=key.pk,
            ip="203.0.113.7",
            first_seen=now,
            last_seen=now,
            requests=7,
        )
    finally:
        migrated_to_the_end()
    assert UsageIp.objects.get(api_key=key).admitted == 7
