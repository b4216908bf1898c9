"""Where an ended key is still tried from: the key keeps the address of its last refusal
beside its time, from the usage log's own entries (the address the log gives the call),
at most one write a minute per key, and only for a token that is a real key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.tokens import TokenKind, token_generate
from core import write_behind
from core.write_behind import StreamIngest
from tests.api.assertions import assert_error
from tests.conftest import usage_call
from usage.models import UsageRecord
from usage.writer import usage_write

INVOKE = "/v1/agents/my-agent/invoke"


def refused(at, key, ip):
    return usage_call(at, key=key, ip=ip, status=401, error_code="expired_api_key")


@pytest.fixture
def revoked(api_key) -> ApiKey:
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now() - timedelta(hours=1))
    key.refresh_from_db()
    return key


def test_the_last_refusal_of_a_batch_names_its_address(revoked):
    now = timezone.now()
    usage_write(
        [
            refused(now - timedelta(minutes=2), revoked, "203.0.113.1"),
            refused(now - timedelta(seconds=5), revoked, "2001:db8::7"),
            refused(now - timedelta(minutes=1), revoked, "198.51.100.3"),
        ]
    )
    revoked.refresh_from_db()
    assert revoked.last_refused_at == now - timedelta(seconds=5)
    assert revoked.last_refused_ip == "2001:db8::7"


def test_a_refusal_within_the_minute_writes_nothing_address_included(revoked):
    """The throttle of the mark holds for the address as for the time: one write a minute
    per key however fast it is tried, so the two stay the same refusal's."""
    now = timezone.now()
    usage_write([refused(now - timedelta(seconds=30), revoked, "203.0.113.1")])
    usage_write([refused(now, revoked, "198.51.100.3")])
    revoked.refresh_from_db()
    assert revoked.last_refused_at == now - timedelta(seconds=30)
    assert revoked.last_refused_ip == "203.0.113.1"
    usage_write([refused(now + timedelta(minutes=1), revoked, "198.51.100.3")])
    revoked.refresh_from_db()
    assert revoked.last_refused_ip == "198.51.100.3"


def test_a_refusal_without_an_address_clears_the_one_before(revoked):
    """The address is the last refusal's: an older one beside a newer time would name
    the wrong caller."""
    now = timezone.now()
    usage_write([refused(now - timedelta(minutes=5), revoked, "203.0.113.1")])
    usage_write([refused(now, revoked, None)])
    revoked.refresh_from_db()
    assert revoked.last_refused_at == now and revoked.last_refused_ip is None


def test_a_working_keys_old_secret_refused_records_no_address(api_key):
    key, _ = api_key
    usage_write([refused(timezone.now(), key, "203.0.113.1")])
    key.refresh_from_db()
    assert key.last_refused_at is None and key.last_refused_ip is None


@pytest.fixture(params=["without Redis", "with Redis"])
def refusals_written(request, settings):
    """How the API's entries reach the writer: the worker's own buffer, or the Redis
    stream and the ingest (the API's path differs: it hands the entry to one or the
    other). Returns what writes what the API has handed over."""
    if request.param == "without Redis":
        return lambda: None
    request.getfixturevalue("redis_store")
    settings.USAGE_FLUSH_SECONDS = 3600
    return lambda: StreamIngest(consumer="test").run(once=True)


@pytest.mark.parametrize(
    ("remote", "forwarded", "recorded"),
    [
        ("::ffff:198.51.100.23", "", "198.51.100.23"),  # dual-stack socket: IPv4 as IPv4
        ("2001:db8::1%eth0", "", "2001:db8::1"),  # no zone
        ("10.0.0.2", "203.0.113.50", "203.0.113.50"),  # through our proxy
        ("198.51.100.8", "203.0.113.50", "198.51.100.8"),  # said by no proxy of ours
    ],
)
def test_a_revoked_key_called_through_the_api_records_the_callers_address(
    api, revoked, refusals_written, settings, remote, forwarded, recorded
):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    api.client.defaults["REMOTE_ADDR"] = remote
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    # The refusal is the contract's, unchanged.
    assert_error(api.post(INVOKE, {"prompt": "hi"}, headers=headers), 401, "expired_api_key")
    refusals_written()
    revoked.refresh_from_db()
    assert revoked.last_refused_ip == recorded
    assert UsageRecord.objects.get().ip == recorded  # the usage log's address, the same


def test_a_made_up_token_writes_to_no_key(api, revoked, refusals_written):
    """A token of the right shape and checksum that is no key's is refused as unknown
    and counted unattributed: it marks no key, however often it is sent."""
    made_up = str(token_generate(TokenKind.API_KEY))
    api.client.defaults["REMOTE_ADDR"] = "198.51.100.23"
    assert_error(api.post(INVOKE, {"prompt": "hi"}, token=made_up), 401, "invalid_api_key")
    refusals_written()
    assert not ApiKey.objects.filter(last_refused_ip__isnull=False).exists()
    assert not ApiKey.objects.filter(last_refused_at__isnull=False).exists()


def test_the_stream_carries_no_more_than_before_for_a_refusal(api, revoked, redis_store, settings):
    """The address travels in the entry the API already hands over: one stream entry per
    refused call, as before, and no write to the key on the API's path."""
    settings.USAGE_FLUSH_SECONDS = 3600
    api.client.defaults["REMOTE_ADDR"] = "198.51.100.23"
    assert_error(api.post(INVOKE, {"prompt": "hi"}), 401, "expired_api_key")
    (length,) = redis_store.round_trip(("XLEN", write_behind.stream_key()))
    assert length == 1
    revoked.refresh_from_db()
    assert revoked.last_refused_at is None  # not until the ingest writes the entry


def test_refusals_earlier_in_the_hour_the_key_ended_are_not_calls_after_it(api_key, project):
    """A client token that expired on its own (a browser's, refused with expired_api_key
    and logged against its key) and a rolled key's old secret past its overlap, refused at
    10:05 and 10:10; the key revoked at 10:30 and never tried since: no call after it."""
    from apikeys.services import client_token_create
    from usage.key_usage import revoked_key_uses

    key, _ = api_key
    minted, _ = client_token_create(project=project, api_key=key, context={})
    ended = timezone.now().replace(minute=30, second=0, microsecond=0) - timedelta(hours=2)
    usage_write(
        [
            usage_call(
                ended - timedelta(minutes=25),
                key=key,
                client_token=minted,
                status=401,
                error_code="expired_api_key",
            ),
            refused(ended - timedelta(minutes=20), key, "203.0.113.9"),
        ]
    )
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=ended)
    key.refresh_from_db()
    assert ApiKey.objects.with_refusals_since_end().get(pk=key.pk).refusals_since_end == 0
    assert revoked_key_uses(api_key=key, now=timezone.now()) == 0


def test_refusals_after_the_end_in_its_hour_and_the_hours_after_are_calls_after_it(api_key):
    """Revoked at 10:30: a refusal at 10:30 itself, one at 10:31 in the same hour and one at
    11:05 in the next are three calls after it; one refused at 10:29 is not."""
    from usage.key_usage import revoked_key_uses

    key, _ = api_key
    ended = timezone.now().replace(minute=30, second=0, microsecond=0) - timedelta(hours=3)
    usage_write(
        [
            refused(ended - timedelta(minutes=1), key, "203.0.113.9"),
            refused(ended, key, "203.0.113.9"),
            refused(ended + timedelta(minutes=1), key, "203.0.113.9"),
            refused(ended + timedelta(minutes=35), key, "203.0.113.9"),
        ]
    )
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=ended)
    key.refresh_from_db()
    assert ApiKey.objects.with_refusals_since_end().get(pk=key.pk).refusals_since_end == 3
    assert revoked_key_uses(api_key=key, now=timezone.now()) == 3
