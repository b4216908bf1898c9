"""The detector against what the review sent it (issue 10): odd rows, odd names, a mail
server that refuses, two runs at once and writers that commit out of order. One tenant's
bad data never stops alerts or alert emails for another, and every row is read once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import IntegrityError, connection, connections, transaction

from accounts.models import Project
from alerts import detection
from alerts.detection import detect
from alerts.models import DetectionCursor, Flag
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import personal_token_create
from tests.conftest import usage_call
from usage.models import UsageRecord
from usage.writer import usage_write

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def revoked_key_tried(key: ApiKey, minutes_ago: int = 3, **fields):
    return usage_call(
        NOW - timedelta(minutes=minutes_ago),
        key=key,
        status=401,
        error_code="expired_api_key",
        **fields,
    )


@pytest.fixture
def two_tenants(api_key, make_user, make_key):
    """A revoked key in each of two projects, each with its own owner."""
    mine, _ = api_key
    other_owner = make_user(email="other-owner@example.com")
    theirs, _ = make_key(Project.objects.for_user(other_owner).get(), name="Theirs")
    for key in (mine, theirs):
        key.revoke(by=None)
    return mine, theirs


def test_a_revoked_pat_without_a_project_does_not_stop_detection_for_anyone(two_tenants, user):
    """The review's high finding: the PAT's row has no project; Flag(project=None) broke
    the batch, the retry recursed, and the cursor never moved again."""
    mine, theirs = two_tenants
    pat, _ = personal_token_create(user=user, name="Old CLI")
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        expires_at=NOW - timedelta(days=1), created_at=NOW - timedelta(days=30)
    )
    usage_write(
        [
            usage_call(
                NOW - timedelta(minutes=4), pat=pat, status=401, error_code="expired_api_key"
            ),
            revoked_key_tried(mine),
            revoked_key_tried(theirs),
        ]
    )
    result = detect(now=NOW)
    assert result.rows == 3 and result.failures == 0
    flagged = set(Flag.objects.values_list("api_key_id", flat=True))
    assert flagged == {mine.pk, theirs.pk}
    assert DetectionCursor.objects.get().last_id == UsageRecord.objects.latest("id").id
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [mine.project.memberships.get().user.email, "other-owner@example.com"]
    )


def test_a_check_that_fails_on_one_row_skips_only_itself(two_tenants, monkeypatch, caplog):
    mine, theirs = two_tenants
    real = detection.new_networks.network_of

    def breaks_on_one_address(ip: str) -> str:
        if ip == "198.51.100.66":
            raise ValueError("a row no check expected")
        return real(ip)

    monkeypatch.setattr(detection.new_networks, "network_of", breaks_on_one_address)
    usage_write(
        [
            usage_call(NOW - timedelta(minutes=5), key=mine, ip="198.51.100.66"),
            revoked_key_tried(mine),
            revoked_key_tried(theirs),
        ]
    )
    result = detect(now=NOW)
    assert result.failures == 1
    assert "new networks failed" in caplog.text
    # The other checks of the same batch, for both projects, still ran and committed.
    assert Flag.objects.filter(kind=Flag.Kind.ENDED_TOKEN_USED).count() == 2
    assert detect(now=NOW).rows == 0  # and the cursor moved past the batch


def test_a_flag_that_cannot_be_stored_is_skipped_without_recursing(two_tenants, monkeypatch):
    mine, theirs = two_tenants
    real_create = Flag.objects.create

    def refuse_mine(**fields):
        if fields["api_key_id"] == mine.pk:
            raise IntegrityError("another run opened it, and it was acknowledged since")
        return real_create(**fields)

    monkeypatch.setattr(Flag.objects, "create", refuse_mine)
    usage_write([revoked_key_tried(mine), revoked_key_tried(theirs)])
    result = detect(now=NOW)
    assert result.failures == 1
    assert list(Flag.objects.values_list("api_key_id", flat=True)) == [theirs.pk]


def test_a_newline_in_a_project_name_stays_out_of_the_mail_headers(two_tenants):
    mine, theirs = two_tenants
    Project.objects.filter(pk=mine.project_id).update(name="Eve proj\nBcc: x@example.com")
    usage_write([revoked_key_tried(mine), revoked_key_tried(theirs)])
    result = detect(now=NOW)
    assert (result.emails, result.failures) == (2, 0)
    subjects = sorted(m.subject for m in mail.outbox)
    assert any("Eve proj Bcc: x@example.com" in s for s in subjects)
    for message in mail.outbox:
        assert "\n" not in message.subject
        assert message.bcc == []
        assert "x@example.com" not in message.message()["To"]


def test_a_name_saved_with_a_direction_override_cannot_reorder_the_alert_mail(two_tenants, user):
    """Names refuse U+202E now; one saved before still names the key in the alert."""
    mine, _ = two_tenants
    ApiKey.objects.filter(pk=mine.pk).update(name="Billing \u202ekcatta")
    usage_write([revoked_key_tried(mine)])
    detect(now=NOW)
    (message,) = [m for m in mail.outbox if m.to == [user.email]]
    assert "\u202e" not in message.body and "Billing kcatta" in message.body


def test_a_name_saved_with_line_breaks_cannot_write_a_paragraph_of_the_alert_mail(
    two_tenants, user
):
    """Found in review: the subject made a name saved before names were one line into one
    line, but the body kept its line breaks, so such a name could write a paragraph of
    its own into an email that comes from us."""
    mine, _ = two_tenants
    forged = "Billing\r\n\nURGENT: sign in again at https://evil.example/login"
    ApiKey.objects.filter(pk=mine.pk).update(name=forged)
    usage_write([revoked_key_tried(mine)])
    detect(now=NOW)
    (message,) = [m for m in mail.outbox if m.to == [user.email]]
    assert "\nURGENT" not in message.body and "\r" not in message.body
    assert "Billing URGENT: sign in again at https://evil.example/login" in message.body


def test_one_projects_email_failing_does_not_keep_the_others_and_is_sent_later(
    two_tenants, monkeypatch
):
    mine, theirs = two_tenants
    real_send = detection.emails.send_mail

    def refuses_mine(**kwargs):
        if mine.project.name in kwargs["subject"]:
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(detection.emails, "send_mail", refuses_mine)
    usage_write([revoked_key_tried(mine), revoked_key_tried(theirs)])
    result = detect(now=NOW)
    assert (result.emails, result.failures) == (1, 1)
    assert [m.to for m in mail.outbox] == [["other-owner@example.com"]]
    # The flag was stored; its email is owed, and the next run sends it from that state.
    monkeypatch.setattr(detection.emails, "send_mail", real_send)
    later = detect(now=NOW + timedelta(minutes=1))
    assert (later.rows, later.emails) == (0, 1)
    assert len(mail.outbox) == 2
    assert detect(now=NOW + timedelta(minutes=2)).emails == 0  # and only once


def test_one_alerts_email_that_cannot_be_written_keeps_no_other_from_going(two_tenants):
    """Only the send was isolated: the email's text (its links, made from the project's
    slug and the alert's evidence) was written before it, and a slug that reverse() no
    longer takes (an edit by hand, a restore) raised out of the run. The emails after it
    in the run, every person's new-network notices, and the command itself stopped, and
    that alert's email, claimed already, was never sent nor tried again."""
    mine, theirs = two_tenants
    Project.objects.filter(pk=mine.project_id).update(slug="ada's project")
    usage_write([revoked_key_tried(mine), revoked_key_tried(theirs)])
    result = detect(now=NOW)
    assert (result.emails, result.failures) == (1, 1)
    assert [m.to for m in mail.outbox] == [["other-owner@example.com"]]
    flag = Flag.objects.get(api_key=mine)
    assert (flag.emailed_at, flag.email_attempts) == (None, 1)  # owed, tried again later


def test_the_command_reports_failures_and_finishes(two_tenants, monkeypatch):
    import io

    mine, theirs = two_tenants
    monkeypatch.setattr(
        detection.emails, "send_mail", lambda **kwargs: (_ for _ in ()).throw(OSError("down"))
    )
    usage_write([revoked_key_tried(mine), revoked_key_tried(theirs)])
    out, err = io.StringIO(), io.StringIO()
    call_command("detect_suspicious_activity", stdout=out, stderr=err)
    assert "2 new alerts" in out.getvalue()
    assert "2 failures" in err.getvalue()


@pytest.mark.django_db(transaction=True)
def test_rows_committed_out_of_id_order_are_each_read_once(api_key, make_key, project):
    """The review's second high finding: with two writers, a batch that took its ids first
    could commit after a later one, fall behind the cursor and never be read. Writer A
    opens its batch and waits; writer B writes; the detector runs; A commits; the detector
    runs again. Every row must have been read exactly once."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids follow commit order by design")
    # Two keys, so that the writers share no roll-up row (which would order them anyway).
    keys = {1: api_key[0], 2: make_key(project, name="Second")[0]}
    for key in keys.values():
        key.revoke(by=None)
    a_inside, a_may_commit, b_done = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer(n: int, start: threading.Event | None, hold: threading.Event | None) -> None:
        try:
            if start is not None:
                start.wait(10)
            with transaction.atomic():
                usage_write([revoked_key_tried(keys[n], minutes_ago=n, ip=f"192.0.2.{n}")])
                if hold is not None:
                    a_inside.set()
                    hold.wait(10)
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)
        finally:
            connections.close_all()

    a = threading.Thread(target=writer, args=(1, None, a_may_commit))
    b = threading.Thread(target=lambda: (writer(2, a_inside, None), b_done.set()))
    a.start()
    b.start()
    assert a_inside.wait(10)
    b_done.wait(1)  # B is now either written (no ordering) or waiting behind A
    first = detect(now=NOW)
    a_may_commit.set()
    a.join(10)
    b.join(10)
    assert not errors, errors
    second = detect(now=NOW)
    assert first.rows + second.rows == 2
    assert sorted(Flag.objects.values_list("api_key_id", flat=True)) == sorted(
        k.pk for k in keys.values()
    )


def test_one_projects_unreadable_alert_rules_stop_nobody_elses_detection(
    project, make_user, make_project, make_key
):
    """A hand-edited rules row (kinds turned off that are no kinds; a number where the
    list belongs, before the database refused one: alerts/migrations/0017) is read as
    the defaults: detection goes on for that project and every other."""
    from datetime import timedelta

    from django.utils import timezone

    from alerts.detection import detect
    from alerts.models import AlertRules, Flag
    from tests.conftest import usage_call
    from usage.writer import usage_write

    odd = make_project(make_user("odd@example.com"), name="Odd")
    AlertRules.objects.create(project=odd)
    AlertRules.objects.filter(project=odd).update(off=[5, None, {"kind": "new_network"}])
    key, _ = make_key(project)
    now = timezone.now()
    usage_write(
        [
            usage_call(
                now - timedelta(seconds=s),
                key=key,
                status=403,
                error_code="insufficient_permissions",
            )
            for s in range(25)
        ]
    )
    detect(now=now + timedelta(seconds=1))
    assert Flag.objects.filter(api_key=key).exists()


@pytest.mark.django_db(transaction=True)
def test_one_projects_rules_json_that_cannot_be_read_stops_nobody_elses_detection(
    project, make_user, make_project, make_key
):
    """Rules whose kinds turned off hold JSON that Python cannot read back (a number past
    int()'s 4,300 digits, put there by hand or by a restore) raised while a batch's rules
    were read: the batch failed whole, the cursor stayed, and every run met it again, so
    detection stopped for every project. That project is checked with the defaults."""
    from datetime import timedelta

    from django.utils import timezone

    from alerts.models import AlertRules

    odd = make_project(make_user("odd@example.com"), name="Odd")
    AlertRules.objects.create(project=odd, unused_days=30)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {AlertRules._meta.db_table} SET off = %s WHERE project_id = %s",  # noqa: S608
            ["[" + "7" * 5000 + "]", odd.pk],
        )
    theirs, _ = make_key(odd)
    mine, _ = make_key(project)
    now = timezone.now()
    usage_write(
        [
            usage_call(
                now - timedelta(seconds=s),
                key=key,
                status=403,
                error_code="insufficient_permissions",
            )
            for s in range(25)
            for key in (theirs, mine)
        ]
    )
    ApiKey.objects.filter(pk__in=[theirs.pk, mine.pk]).update(created_at=now - timedelta(days=99))

    result = detect(now=now + timedelta(seconds=1))

    bursts = Flag.objects.filter(kind=Flag.Kind.AUTH_FAILURE_BURST)
    assert set(bursts.values_list("api_key_id", flat=True)) == {theirs.pk, mine.pk}
    unused = Flag.objects.filter(kind=Flag.Kind.UNUSED_KEY)
    assert set(unused.values_list("api_key_id", flat=True)) == {theirs.pk, mine.pk}
    assert result.rows == 50 and DetectionCursor.objects.get().last_id > 0


@pytest.mark.parametrize(
    "odd",
    [
        {"ip": "not-an-ip"},
        {"ip": "192.0.2.0/24"},
        {"created_at": datetime(1, 1, 1, tzinfo=UTC)},
        {"created_at": datetime(9999, 1, 1, tzinfo=UTC)},
    ],
    ids=["an address that is none", "a network", "year 1", "year 9999"],
)
def test_an_unreadable_row_is_skipped_alone_and_other_projects_are_still_checked(
    api_key, make_user, make_key, odd
):
    """An adversarial review: one row whose address is no address (SQLite keeps any text)
    or whose time the checks cannot add a week to undid the whole new-networks or spikes
    check, for every project in its batch, and the cursor moved past what was lost. (The
    writer refuses such rows; these are put there by hand, as a restore or a bug could.)"""
    if odd.get("ip") == "not-an-ip" and connection.vendor == "postgresql":
        pytest.skip("PostgreSQL's inet column refuses such an address")
    mine, _ = api_key
    theirs, _ = make_key(
        Project.objects.for_user(make_user(email="other-owner@example.com")).get(), name="Theirs"
    )
    ApiKey.objects.filter(pk__in=[mine.pk, theirs.pk]).update(created_at=NOW - timedelta(days=30))
    usage_write(
        [
            usage_call(NOW - timedelta(minutes=6), key=mine, ip="192.0.2.1", path="/odd"),
            usage_call(NOW - timedelta(days=3), key=theirs, ip="203.0.113.10"),
            usage_call(NOW - timedelta(minutes=5), key=theirs, ip="198.51.100.7"),
        ]
    )
    if "ip" in odd:  # past Django's own check, as a restore or a bug could
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {UsageRecord._meta.db_table} SET ip = %s WHERE path = %s",
                [odd["ip"], "/odd"],
            )
    else:
        UsageRecord.objects.filter(path="/odd").update(**odd)
    result = detect(now=NOW)  # the first run reads the whole log, whatever its times
    assert result.failures == 1
    [flag] = Flag.objects.filter(kind=Flag.Kind.NEW_NETWORK)
    assert (flag.api_key_id, flag.evidence["network"]) == (theirs.pk, "198.51.100.0/24")
    assert detect(now=NOW).rows == 0  # read once: the cursor is past them all


def test_a_mailbox_whose_mail_hangs_costs_a_run_one_timeout_not_one_per_alert(
    api_key, make_key, make_user, monkeypatch
):
    """A mail server that hangs on one tenant's addresses (a relay checking each
    recipient with its domain, a tarpit there) answers each message after EMAIL_TIMEOUT:
    one per alert of theirs, and the run, every other tenant's alerts behind it, waited
    for all of them. Once timed out, an address is not tried again in the run."""
    mine, _ = api_key
    keys = [mine] + [make_key(mine.project, name=f"Key {n}")[0] for n in range(4)]
    other_owner = make_user(email="other-owner@example.com")
    theirs, _ = make_key(Project.objects.for_user(other_owner).get(), name="Theirs")
    for key in [*keys, theirs]:
        key.revoke(by=None)
    real_send = detection.emails.send_mail
    waited_for = []

    def hangs_for_mine(**kwargs):
        if kwargs["recipient_list"] != [other_owner.email]:
            waited_for.append(kwargs["recipient_list"])
            raise TimeoutError("timed out")  # as smtplib does, after EMAIL_TIMEOUT
        return real_send(**kwargs)

    monkeypatch.setattr(detection.emails, "send_mail", hangs_for_mine)
    usage_write([revoked_key_tried(key) for key in [*keys, theirs]])
    result = detect(now=NOW)

    assert len(waited_for) == 1
    assert [m.to for m in mail.outbox] == [[other_owner.email]]
    # Owed, and tried again by the next run.
    assert Flag.objects.filter(emailed_at__isnull=True).count() == len(keys)
    assert result.failures == len(keys)


def test_a_tried_keys_unreadable_json_stops_no_projects_ended_token_alerts(two_tenants):
    """An ended key still tried is named from its row (its name, hint, whether it was
    rolled): read whole, a key whose agent scopes hold JSON Python cannot read back (a
    number past int()'s 4,300 digits, put there by hand or by a restore) failed the check
    for the whole batch, and every project's high alert in it was lost. Only the columns
    the summary uses are read."""
    mine, theirs = two_tenants
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ApiKey._meta.db_table} SET agent_names = %s WHERE id = %s",  # noqa: S608
            ["[" + "7" * 5000 + "]", theirs.pk],
        )
    usage_write([revoked_key_tried(mine), revoked_key_tried(theirs)])
    result = detect(now=NOW)
    assert result.failures == 0
    assert set(Flag.objects.values_list("api_key_id", flat=True)) == {mine.pk, theirs.pk}


def test_a_client_tokens_unreadable_json_keeps_no_other_alert_from_being_emailed(two_tenants):
    """The alert email links to the calls behind it, by the client token's public id: read
    whole, a token whose context holds JSON Python cannot read back (a number past int()'s
    4,300 digits, put there by hand or by a restore) raised out of the run's emails, and
    the alerts after it went unmailed that run, its own for good."""
    from apikeys.models import ClientToken
    from apikeys.services import client_token_create

    mine, theirs = two_tenants
    minted, _ = client_token_create(project=theirs.project, api_key=theirs, context={})
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {ClientToken._meta.db_table} SET context = %s WHERE id = %s",  # noqa: S608
            ['{"n": [' + "7" * 5000 + "]}", minted.pk],
        )
    usage_write(
        [
            revoked_key_tried(theirs, minutes_ago=4, client_token_id=minted.pk),
            revoked_key_tried(mine),
        ]
    )
    detect(now=NOW)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(
        [mine.project.memberships.get().user.email, "other-owner@example.com"]
    )
