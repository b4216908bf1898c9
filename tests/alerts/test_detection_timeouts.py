"""The detector when one tenant's unit of work runs out of time: a query that outlasts the
statement timeout (57014), or a flag row another transaction holds past the lock timeout
(55P03). Django raises both as an OperationalError, as it does a lost connection; they
cost that unit alone, every run they recur, and detection goes on for everyone else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from accounts.models import Project
from alerts import detection
from alerts.detection import detect
from alerts.models import DetectionCursor, Flag
from apikeys.models import ApiKey
from tests.conftest import (
    committed_elsewhere,
    row_locked_elsewhere,
    statements_time_out,
    usage_call,
)
from usage.models import UsageRecord
from usage.writer import usage_write

OTHER_OWNER = "other-owner@example.com"


@pytest.fixture
def two_tenants(api_key, make_user, make_key):
    """A key in each of two projects, each with its own owner; mine comes first."""
    mine, _ = api_key
    theirs, _ = make_key(
        Project.objects.for_user(make_user(email=OTHER_OWNER)).get(), name="Theirs"
    )
    return mine, theirs


def ended_key_tried(key: ApiKey, minutes_ago: int = 3):
    return usage_call(
        timezone.now() - timedelta(minutes=minutes_ago),
        key=key,
        status=401,
        error_code="expired_api_key",
    )


def flagged(two_tenants) -> tuple[ApiKey, ApiKey]:
    """Both keys revoked and tried once: a flag each, raised by a first run."""
    mine, theirs = two_tenants
    for key in two_tenants:
        key.revoke(by=None)
    usage_write([ended_key_tried(mine), ended_key_tried(theirs)])
    detect()
    return mine, theirs


def cursor_is_at_the_end() -> bool:
    return DetectionCursor.objects.get().last_id == UsageRecord.objects.latest("id").id


@pytest.mark.django_db(transaction=True)
def test_a_flag_held_by_another_transaction_costs_only_its_own_update(
    two_tenants, short_lock_timeout
):
    mine, theirs = flagged(two_tenants)
    my_flag, their_flag = Flag.objects.get(api_key=mine), Flag.objects.get(api_key=theirs)
    # Mine is reached first on every run, and its row stays locked for two runs.
    with row_locked_elsewhere(my_flag):
        for _ in range(2):
            usage_write([ended_key_tried(mine), ended_key_tried(theirs)])
            result = detect()
            assert (result.rows, result.failures) == (2, 1)
            assert cursor_is_at_the_end()
    their_flag.refresh_from_db()
    my_flag.refresh_from_db()
    assert (their_flag.occurrences, my_flag.occurrences) == (3, 1)
    # Once the lock is gone, the key's next attempts add to its flag as before.
    usage_write([ended_key_tried(mine)])
    assert detect().failures == 0
    my_flag.refresh_from_db()
    assert my_flag.occurrences == 2


@pytest.mark.django_db(transaction=True)
def test_an_alert_email_whose_flag_is_held_elsewhere_waits_and_the_others_go_out(
    two_tenants, short_lock_timeout
):
    mine, _ = flagged(two_tenants)
    Flag.objects.update(emailed_at=None)  # as if the mail server had been down
    mail.outbox.clear()
    my_flag = Flag.objects.get(api_key=mine)  # the lower id: its email is tried first
    with row_locked_elsewhere(my_flag):
        for _ in range(2):
            result = detect()
            assert result.failures == 1
        assert [m.to for m in mail.outbox] == [[OTHER_OWNER]]
    my_flag.refresh_from_db()
    assert my_flag.emailed_at is None  # owed, and sent by the next run
    assert (detect().emails, len(mail.outbox)) == (1, 2)


def test_a_check_whose_query_outlasts_the_statement_timeout_is_skipped_and_the_run_goes_on(
    two_tenants,
):
    """Before, the timeout undid the whole batch and left the cursor where it was: every
    run read the same batch, timed out the same way, and detection stopped for good."""
    mine, theirs = two_tenants
    for key in two_tenants:
        key.revoke(by=None)
    before = usage_call(timezone.now() - timedelta(minutes=5), key=mine)  # a success
    usage_write([before, ended_key_tried(mine), ended_key_tried(theirs)])
    # The new-networks check reads the known networks of the batch's keys in one query.
    with statements_time_out(lambda sql, params: '"apikeys_keynetwork"' in sql):
        result = detect()
    assert (result.rows, result.failures) == (3, 1)
    assert Flag.objects.filter(kind=Flag.Kind.ENDED_TOKEN_USED).count() == 2
    assert cursor_is_at_the_end()


def test_a_lost_connection_still_stops_the_run_with_the_cursor_where_it_was(
    two_tenants, monkeypatch
):
    from django.db import OperationalError

    from alerts import detection

    mine, theirs = two_tenants
    usage_write([usage_call(timezone.now(), key=mine), usage_call(timezone.now(), key=theirs)])

    def connection_lost(*args):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(detection.run, "_new_networks", connection_lost)
    with pytest.raises(OperationalError):
        detect()
    assert not DetectionCursor.objects.filter(last_id__gt=0).exists()


def test_a_query_the_schema_cannot_answer_stops_the_run_with_the_cursor_where_it_was(
    two_tenants,
):
    """Code ahead of its migration (a deploy whose migrate has not run yet) asks for a
    column the table does not have yet. On PostgreSQL that is a ProgrammingError, which was
    counted as one check's failure: every check of every batch failed alike and the cursor
    moved on past all of it, never read once the migration ran. (SQLite calls it an
    OperationalError, which stopped the run already.)"""
    from django.db import DatabaseError, connection

    mine, theirs = two_tenants
    usage_write([usage_call(timezone.now(), key=mine), usage_call(timezone.now(), key=theirs)])

    def not_migrated_yet(execute, sql, params, many, context):
        if '"apikeys_keynetwork"' in sql:
            sql, params = "SELECT column_of_the_next_release FROM apikeys_keynetwork", ()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(not_migrated_yet), pytest.raises(DatabaseError):
        detect()
    assert not DetectionCursor.objects.filter(last_id__gt=0).exists()
    assert detect().rows == 2  # once migrated, the next run reads it all


# -- One key's query in a check: only that key's finding is lost -------------------------------


def on_key(key_id: int, *fragments: str):
    """A statement about one key (or client token) whose SQL holds each of `fragments`."""
    return lambda sql, params: list(params[:1]) == [key_id] and all(f in sql for f in fragments)


def raised(kind: str) -> set[int | None]:
    return set(Flag.objects.filter(kind=kind).values_list("api_key_id", flat=True))


def test_one_keys_auth_burst_query_timing_out_costs_only_that_key(two_tenants):
    mine, theirs = two_tenants
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(seconds=s), key=key, status=403, error_code="forbidden")
            for key in two_tenants
            for s in range(25)
        ]
    )
    with statements_time_out(on_key(mine.pk, "COUNT(")):
        result = detect()
    assert result.failures == 1
    assert raised(Flag.Kind.AUTH_FAILURE_BURST) == {theirs.pk}
    assert cursor_is_at_the_end()


def test_one_client_tokens_address_count_timing_out_costs_only_that_token(two_tenants):
    from apikeys.services import client_token_create

    mine, theirs = two_tenants
    tokens = {
        key.pk: client_token_create(project=key.project, api_key=key, context={})[0]
        for key in two_tenants
    }
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=i), client_token=token, ip=f"198.51.{i}.9")
            for token in tokens.values()
            for i in range(6)
        ]
    )
    with statements_time_out(on_key(tokens[mine.pk].pk, "DISTINCT")):
        result = detect()
    assert result.failures == 1
    assert raised(Flag.Kind.CLIENT_TOKEN_MANY_IPS) == {theirs.pk}


def test_one_keys_volume_spike_query_timing_out_costs_only_that_key(two_tenants):
    mine, theirs = two_tenants
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    ApiKey.objects.update(created_at=now - timedelta(days=30))
    steady = [
        usage_call(now - timedelta(days=2) + timedelta(minutes=10 * n), key=key)
        for key in two_tenants
        for n in range(6 * 46)
    ]
    spike = [
        usage_call(now - timedelta(minutes=20, seconds=s * 5), key=key)
        for key in two_tenants
        for s in range(150)
    ]
    usage_write(steady + spike)
    spike_hour = now.replace(minute=0)
    # Its baseline for the spike's hour (each hour of a key is a unit of its own).
    baseline = on_key(mine.pk, '"apikeys_usagehour"', "SUM(")
    with statements_time_out(lambda sql, params: baseline(sql, params) and spike_hour in params):
        result = detect(now=now)
    assert result.failures == 1
    assert raised(Flag.Kind.VOLUME_SPIKE) == {theirs.pk}


def test_one_keys_unused_check_timing_out_costs_only_that_key_every_run(two_tenants):
    """The unused-keys pass runs over every project's keys after the batches: one key's
    query timing out undid the flags of all, on every run."""
    mine, theirs = two_tenants
    now = timezone.now()
    ApiKey.objects.update(
        created_at=now - timedelta(days=200), last_used_at=now - timedelta(days=91)
    )
    for _ in range(2):
        with statements_time_out(on_key(mine.pk, "MAX(")):
            assert detect().failures == 1
    assert raised(Flag.Kind.UNUSED_KEY) == {theirs.pk}
    detect()
    assert raised(Flag.Kind.UNUSED_KEY) == {mine.pk, theirs.pk}


@pytest.mark.django_db(transaction=True)
def test_a_flag_can_be_acknowledged_while_its_email_is_being_sent(two_tenants, monkeypatch):
    """Found in review: the detector held the flag's row until the mail server had
    answered every recipient, so an owner acknowledging it waited, and past the lock
    timeout got an error."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    mine, _ = two_tenants
    mine.revoke(by=None)
    usage_write([ended_key_tried(mine)])
    table = connection.ops.quote_name(Flag._meta.db_table)

    def mail_server_answering_slowly(**message):
        committed_elsewhere(
            f"UPDATE {table} SET acknowledged_at = now() WHERE api_key_id = %s",  # noqa: S608
            [mine.pk],
        )
        mail.outbox.append(message["subject"])

    monkeypatch.setattr(detection.emails, "send_mail", mail_server_answering_slowly)
    result = detect()
    assert (result.emails, result.failures) == (1, 0)
    assert Flag.objects.get(api_key=mine).acknowledged_at is not None


def test_an_alert_email_the_mail_server_refused_is_sent_by_the_next_run(two_tenants, monkeypatch):
    mine, _ = two_tenants
    mine.revoke(by=None)
    usage_write([ended_key_tried(mine)])

    def refused(**message):
        raise OSError("connection refused")

    monkeypatch.setattr(detection.emails, "send_mail", refused)
    result = detect()
    assert (result.emails, result.failures) == (0, 1)
    assert Flag.objects.get(api_key=mine).emailed_at is None
    monkeypatch.undo()
    assert (detect().emails, len(mail.outbox)) == (1, 1)
    assert Flag.objects.get(api_key=mine).emailed_at is not None
