"""The usage log: one entry per /v1 call with an identifiable token, a count for the rest."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import api_key_revoke
from apikeys.tokens import TokenKind, token_generate
from tests.conftest import another_connection, usage_call
from usage.models import Outcome, UnattributedCalls, UsageHour, UsageIp, UsageRecord
from usage.writer import usage_write

INVOKE = "/v1/agents/my-agent/invoke"
AGENT = "curl/8.5.0 (billing-worker)"


def the_record(response) -> UsageRecord:
    return UsageRecord.objects.get(request_id=response["X-Request-Id"])


def unattributed() -> dict[str, int]:
    return {row.error_code: row.count for row in UnattributedCalls.objects.all()}


def test_a_successful_call_records_everything_about_it(api, api_key, project):
    before = timezone.now()
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"User-Agent": AGENT})
    after = timezone.now()
    assert response.status_code == 200
    record = the_record(response)
    assert before <= record.created_at <= after
    assert record.api_key_id == api_key[0].pk
    assert record.project_id == project.pk
    assert record.token_kind == "api_key"
    assert (record.method, record.path) == ("POST", INVOKE)
    assert (record.status, record.error_code, record.outcome) == (200, "", Outcome.OK)
    assert 0 < record.latency_us < 60_000_000
    assert record.ip == "127.0.0.1"
    assert record.user_agent == AGENT
    assert record.request_id == response["X-Request-Id"]
    assert UsageRecord.objects.count() == 1


def test_a_revoked_key_is_still_attributed(api, api_key, user):
    api_key_revoke(api_key=api_key[0], by=user)
    record = the_record(api.post(INVOKE, {"prompt": "hi"}))
    assert record.api_key_id == api_key[0].pk
    assert (record.status, record.error_code, record.outcome) == (
        401,
        "expired_api_key",
        Outcome.REVOKED_KEY,
    )


def test_an_expired_key_is_still_attributed(api, make_key, project):
    key, token = make_key(
        project, name="Old", expires_at=timezone.now() - datetime.timedelta(hours=1)
    )
    record = the_record(api.get("/v1/agents", token=token))
    assert (record.api_key_id, record.status, record.error_code) == (
        key.pk,
        401,
        "expired_api_key",
    )
    assert record.outcome == Outcome.REVOKED_KEY


def test_a_call_refused_for_permissions_is_attributed(api, make_key, project):
    key, token = make_key(project, name="Reader", permissions=["read"])
    record = the_record(api.post(INVOKE, {"prompt": "hi"}, token=token))
    assert (record.api_key_id, record.status, record.error_code, record.outcome) == (
        key.pk,
        403,
        "insufficient_permissions",
        Outcome.AUTH_FAILURE,
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "code"),
    [
        ("POST", INVOKE, {}, 400, "missing_required_field"),
        ("POST", "/v1/agents/nobody/invoke", {"prompt": "x"}, 404, "agent_not_found"),
        ("GET", INVOKE, None, 405, "invalid_request"),
        ("DELETE", "/v1/agents/my-agent", None, 405, "invalid_request"),
        ("GET", "/v1/no-such-endpoint", None, 404, "not_found"),
    ],
)
def test_a_client_error_with_a_valid_key_is_attributed(
    api, api_key, method, path, body, status, code
):
    response = api.send(method, path, body)
    assert response.status_code == status
    record = the_record(response)
    assert (record.api_key_id, record.status, record.error_code) == (api_key[0].pk, status, code)
    assert (record.method, record.path) == (method, path)
    assert unattributed() == {}


def test_a_wrong_method_with_a_revoked_key_is_attributed(api, api_key, user):
    api_key_revoke(api_key=api_key[0], by=user)
    response = api.send("GET", INVOKE)
    assert response.status_code == 405
    assert the_record(response).api_key_id == api_key[0].pk


@pytest.mark.parametrize(
    ("authorization", "code"),
    [
        (None, "missing_api_key"),
        ("Basic dXNlcjpwYXNz", "missing_api_key"),
        ("Bearer not-a-key", "invalid_api_key"),
        ("Bearer " + token_generate(TokenKind.API_KEY), "invalid_api_key"),
        ("Bearer " + token_generate(TokenKind.CLIENT_TOKEN), "invalid_api_key"),
    ],
    ids=["none", "basic", "malformed", "unknown", "client-token"],
)
def test_unidentifiable_tokens_are_only_counted(api, authorization, code):
    api.token = None
    headers = {"Authorization": authorization} if authorization else {}
    hour_before = timezone.now().replace(minute=0, second=0, microsecond=0)
    api.post(INVOKE, {"prompt": "hi"}, headers=headers)
    api.post(INVOKE, {"prompt": "hi"}, headers=headers)
    hour_after = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert not UsageRecord.objects.exists()
    assert not UsageHour.objects.exists()
    assert not UsageIp.objects.exists()
    if hour_before == hour_after:
        assert unattributed() == {code: 2}
    assert sum(r.count for r in UnattributedCalls.objects.all()) == 2
    assert {r.hour for r in UnattributedCalls.objects.all()} <= {hour_before, hour_after}


def test_a_bad_checksum_on_a_real_key_is_not_attributed_to_it(api, api_key):
    token = api_key[1]
    api.post(INVOKE, {"prompt": "hi"}, token=token[:-1] + ("x" if token[-1] != "x" else "y"))
    assert not UsageRecord.objects.exists()
    assert unattributed() == {"invalid_api_key": 1}


def test_the_roll_ups_count_calls_by_outcome(api, api_key, make_key, project, user):
    api.post(INVOKE, {"prompt": "a"})
    api.post(INVOKE, {"prompt": "b"})
    api.post(INVOKE, {})
    api.get("/v1/agents/nobody")
    hour = UsageHour.objects.get(api_key=api_key[0])
    assert (hour.requests, hour.ok, hour.client_errors, hour.auth_failures) == (4, 2, 2, 0)
    assert hour.latency_us_total == sum(r.latency_us for r in UsageRecord.objects.all())
    ip = UsageIp.objects.get(api_key=api_key[0])
    assert (ip.ip, ip.requests) == ("127.0.0.1", 4)
    api_key_revoke(api_key=api_key[0], by=user)
    api.post(INVOKE, {"prompt": "c"})
    hour.refresh_from_db()
    assert (hour.requests, hour.revoked_key_uses) == (5, 1)


# The client address


def test_x_forwarded_for_is_ignored_without_trusted_proxies(api, settings):
    settings.TRUSTED_PROXIES = []
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert the_record(response).ip == "127.0.0.1"


def test_x_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(api, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert the_record(response).ip == "127.0.0.1"


def test_x_forwarded_for_is_honoured_from_a_trusted_proxy(api, api_key, settings):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = api.post(
        INVOKE, {"prompt": "hi"}, headers={"X-Forwarded-For": "6.6.6.6, 203.0.113.9"}
    )
    assert the_record(response).ip == "203.0.113.9"  # the client wrote 6.6.6.6 itself
    assert UsageIp.objects.get(api_key=api_key[0]).ip == "203.0.113.9"


def test_a_call_from_a_scoped_ipv6_address_is_logged_without_its_zone(api, api_key, settings):
    """Python reads "fe80::1%eth0" as an address (its zone, since 3.9); PostgreSQL's inet
    does not, so the call's usage entry was dropped: a call missing from the log."""
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"X-Forwarded-For": "fe80::1%eth0"})
    assert response.status_code == 200
    assert the_record(response).ip == "fe80::1"
    assert UsageIp.objects.get(api_key=api_key[0]).ip == "fe80::1"


def test_a_long_user_agent_is_cut_not_refused(api):
    response = api.post(INVOKE, {"prompt": "hi"}, headers={"User-Agent": "x" * 1000})
    assert response.status_code == 200
    assert the_record(response).user_agent == "x" * 255


# "Last used" is written at most once a minute


def entry(key: ApiKey, at: datetime.datetime, ip: str = "198.51.100.1", status: int = 200):
    error_code = "" if status < 400 else "agent_not_found"
    return usage_call(at, key=key, ip=ip, status=status, error_code=error_code)


def test_last_used_is_written_at_most_once_a_minute(api_key):
    key = api_key[0]
    start = timezone.now().replace(second=0, microsecond=0) - datetime.timedelta(hours=1)

    usage_write([entry(key, start, ip="198.51.100.1")])
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (start, "198.51.100.1")

    usage_write([entry(key, start + datetime.timedelta(seconds=30), ip="198.51.100.2")])
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (start, "198.51.100.1")

    later = start + datetime.timedelta(seconds=61)
    usage_write([entry(key, later, ip="198.51.100.3")])
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (later, "198.51.100.3")
    assert UsageRecord.objects.filter(api_key=key).count() == 3


@pytest.mark.django_db(transaction=True)
def test_a_key_row_held_elsewhere_does_not_hold_up_the_usage_log(api_key, short_lock_timeout):
    """An expiry reminder being mailed, or a roll, holds the key's row: the usage log is
    written without waiting for it (every tenant's batch would wait), and the mark is made
    by the key's next call."""
    key = api_key[0]
    start = timezone.now().replace(second=0, microsecond=0) - datetime.timedelta(hours=1)
    with another_connection() as reminder:  # claims the key's reminder, then mails
        reminder.execute(
            "UPDATE apikeys_apikey SET expiry_week_reminder_sent_at = now() WHERE id = %s",
            [key.pk],
        )
        usage_write([entry(key, start, ip="198.51.100.1")])
    assert UsageRecord.objects.filter(api_key=key).count() == 1
    key.refresh_from_db()
    assert key.last_used_at is None  # skipped while held
    later = start + datetime.timedelta(minutes=2)
    usage_write([entry(key, later, ip="198.51.100.2")])
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (later, "198.51.100.2")


def test_two_calls_in_the_same_minute_update_the_key_row_once(api_key, monkeypatch):
    key = api_key[0]
    start = timezone.now().replace(second=0, microsecond=0) - datetime.timedelta(hours=1)
    updated: list[int] = []
    real_update = type(ApiKey.objects.all()).update

    def counting_update(queryset, **values):
        rows = real_update(queryset, **values)
        if "last_used_at" in values:
            updated.append(rows)
        return rows

    monkeypatch.setattr(type(ApiKey.objects.all()), "update", counting_update)
    usage_write([entry(key, start)])
    usage_write([entry(key, start + datetime.timedelta(seconds=59))])
    assert sum(updated) == 1


def test_a_batch_marks_last_used_with_its_latest_successful_call(api_key):
    key = api_key[0]
    start = timezone.now() - datetime.timedelta(hours=1)
    usage_write(
        [
            entry(key, start + datetime.timedelta(seconds=5), ip="198.51.100.5"),
            entry(key, start, ip="198.51.100.1"),
            entry(key, start + datetime.timedelta(seconds=9), ip="198.51.100.9", status=404),
        ]
    )
    key.refresh_from_db()
    assert (key.last_used_at, key.last_used_ip) == (
        start + datetime.timedelta(seconds=5),
        "198.51.100.5",
    )


def test_a_refused_call_does_not_mark_the_key_as_used(api, api_key, user):
    api_key_revoke(api_key=api_key[0], by=user)
    api.post(INVOKE, {"prompt": "hi"})
    api_key[0].refresh_from_db()
    assert api_key[0].last_used_at is None


def test_a_real_call_marks_the_key_as_used(api, api_key):
    api.post(INVOKE, {"prompt": "hi"})
    api_key[0].refresh_from_db()
    assert api_key[0].last_used_at is not None
    assert api_key[0].last_used_ip == "127.0.0.1"


def test_the_agent_a_call_names_is_logged_and_a_token_in_its_place_is_not(api, api_key):
    from usage.models import UsageRecord

    api.post("/v1/agents/my-agent/invoke", {"prompt": "x"})
    leaked = api_key[1]
    api.post(f"/v1/agents/{leaked}/invoke", {"prompt": "x"})
    agents = list(UsageRecord.objects.order_by("id").values_list("agent", flat=True))
    assert agents[0] == "my-agent"
    assert leaked not in agents[1] and agents[1].startswith("reminix_sk_[redacted]")


def test_a_token_escaped_in_the_path_is_not_logged_either(api, api_key):
    from usage.models import UsageRecord

    leaked = api_key[1]
    # Escaped twice, decoded once on the way in: the path holds "reminix%5Fsk%5F…".
    api.post(f"/v1/agents/{leaked.replace('_', '%255F')}%2500/invoke", {"prompt": "x"})
    record = UsageRecord.objects.get()
    secret = leaked.removeprefix("reminix_sk_")
    assert secret not in record.path and secret not in record.agent
    assert "reminix_sk_[redacted]" in record.path
    # %00, decoded with the token: PostgreSQL would refuse the row, and its batch.
    assert "\x00" not in record.path


def test_a_token_with_an_escape_inside_it_loses_all_of_its_secret_in_the_log(api, api_key):
    from usage.models import UsageRecord

    leaked = api_key[1]
    secret = leaked.removeprefix("reminix_sk_")
    # Escaped twice, decoded once on the way in: the path holds "reminix_sk_AbCd%41…".
    escaped = f"reminix_sk_{secret[:4]}%2541{secret[4:]}"
    api.post(f"/v1/agents/{escaped}/invoke", {"prompt": "x"})
    record = UsageRecord.objects.get()
    assert secret[4:] not in record.path and secret[4:] not in record.agent
    assert "reminix_sk_[redacted]" in record.path
