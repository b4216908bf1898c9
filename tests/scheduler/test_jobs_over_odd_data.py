"""Every scheduled job over what tenants have stored at its oddest: expiries at the end of
time, names as long as they may be with line breaks, NUL and bidirectional controls, an
address at the length limit, a deleted project and a deleted account with their rows
left behind. Each job runs to its end, and every mail it sends has one-line headers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import account_delete, project_delete
from alerts.models import Flag
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import api_key_create, personal_token_create
from scheduler.jobs import jobs
from tests.conftest import usage_call
from usage.writer import usage_write
from webhooks.services import webhook_create

END_OF_TIME = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
BEGINNING_OF_TIME = datetime(1, 1, 1, tzinfo=UTC)
CONTROLS = "\r\nBcc: everyone@example.com\u202e\u2066\x85\u2028"


def odd(name: str, length: int = 100) -> str:
    # PostgreSQL refuses NUL in text; SQLite keeps it.
    nul = "\x00" if connection.vendor == "sqlite" else ""
    return (f"{name}{CONTROLS}{nul}" + "ü" * length)[:length]


@pytest.fixture
def odd_tenants(user, project, make_user, make_project, settings):
    settings.WEBHOOKS_ALLOW_HTTP = True
    now = timezone.now()
    # An owner whose address is as long as an address can be.
    longest = make_user(email=f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 53}.example")
    assert len(longest.email) == 254
    theirs = Project.objects.for_user(longest).get()
    Project.objects.filter(pk=theirs.pk).update(name=odd("Théirs", 80))
    forever, _ = api_key_create(project=theirs, name="Forever", created_by=longest)
    # Unused for long, so the unused-key check reads it too.
    ApiKey.objects.filter(pk=forever.pk).update(
        expires_at=END_OF_TIME, created_at=now - timedelta(days=200)
    )
    ancient, _ = api_key_create(project=theirs, name="Ancient", created_by=longest)
    # Ended at the first moment there is (the forms refuse it; a row may hold it).
    ApiKey.objects.filter(pk=ancient.pk).update(expires_at=BEGINNING_OF_TIME)
    lasting, _ = personal_token_create(user=longest, name="Lasting")
    PersonalAccessToken.objects.filter(pk=lasting.pk).update(expires_at=END_OF_TIME)
    soon, _ = api_key_create(
        project=theirs, name="Soon", created_by=longest, expires_at=now + timedelta(hours=20)
    )
    ApiKey.objects.filter(pk=soon.pk).update(name=odd("Soon"))
    pat, _ = personal_token_create(user=longest, name="CLI")
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        name=odd("CLI"), expires_at=now + timedelta(days=2)
    )
    tried, _ = api_key_create(project=theirs, name="Tried", created_by=longest)
    ApiKey.objects.filter(pk=tried.pk).update(name=odd("Tried"))
    tried.revoke(by=None)
    webhook_create(
        project=theirs,
        url="http://127.0.0.1:9/private",  # refused at each send: a private address
        format="generic",
        min_severity="low",
        created_by=longest,
    )

    # A deleted project, with what was waiting in it, and a deleted account.
    gone = make_project(user, name="Gone")
    due, _ = api_key_create(
        project=gone, name="Due", created_by=user, expires_at=now + timedelta(days=2)
    )
    webhook_create(
        project=gone, url="https://hooks.example/x", format="slack", min_severity="low",
        created_by=user,
    )  # fmt: skip
    usage_write(
        [usage_call(now - timedelta(minutes=2), key=due, status=401, error_code="expired_api_key")]
    )
    project_delete(project=gone, by=user)
    mine, _ = personal_token_create(user=user, name="Mine")
    PersonalAccessToken.objects.filter(pk=mine.pk).update(expires_at=now + timedelta(days=2))
    account_delete(user=User.objects.get(pk=user.pk))

    usage_write(
        [
            usage_call(
                now - timedelta(minutes=1), key=tried, status=401, error_code="expired_api_key"
            ),
            usage_call(
                now - timedelta(minutes=1), key=due, status=401, error_code="expired_api_key"
            ),
            usage_call(now, key=ancient, status=401, error_code="expired_api_key"),
        ]
    )
    mail.outbox.clear()
    return longest


def job_commands() -> list[tuple[str, ...]]:
    return [job.command for job in jobs()]


@pytest.mark.django_db(transaction=True)
def test_every_job_runs_to_its_end_and_its_mail_has_one_line_headers(odd_tenants):
    for command in job_commands():
        call_command(*command)

    assert Flag.objects.filter(project__name__startswith="Théirs").exists()
    assert not Flag.objects.filter(project__deleted_at__isnull=False).exists()
    subjects = sorted(m.subject for m in mail.outbox)
    assert [s[:24] for s in subjects] == [
        "[Reminix] API key “Soon ",  # the key, on its last day
        "[Reminix] Revoked or exp",  # the alerts: a revoked key tried,
        "[Reminix] Revoked or exp",  # and one that expired at the first moment
        "[Reminix] Your token “CL",  # the personal access token
    ]
    assert Flag.objects.filter(kind=Flag.Kind.UNUSED_KEY, api_key__name="Forever").exists()
    for message in mail.outbox:
        assert message.to == [odd_tenants.email]
        assert message.message()["Bcc"] is None and message.bcc == []
        for control in ("\n", "\r", "\x00"):
            assert control not in message.subject
        for control in ("\u202e", "\u2066"):
            assert control not in message.subject and control not in message.body


# JSON that the databases keep and Python cannot read back: a number past int()'s 4,300
# digits (json.loads raises ValueError, which Django's JSONField does not catch).
UNREADABLE_JSON = "[" + "7" * 5000 + "]"


@pytest.mark.django_db(transaction=True)
def test_a_token_whose_unused_json_cannot_be_read_stops_no_job_for_anyone(
    user, project, make_user, settings
):
    """The jobs loaded whole rows of every due token: a key whose scopes or allowed
    networks hold what Python cannot read (put there by hand, or by a restore) raised
    while the rows were read, outside any one token's isolation, and every tenant's
    expiry reminders, and the unused-key check of every project, stopped, every run."""
    now = timezone.now()
    soon = now + timedelta(days=2)
    mine, _ = api_key_create(project=project, name="Mine", created_by=user, expires_at=soon)
    my_pat, _ = personal_token_create(user=user, name="My CLI")
    other_owner = make_user(email="other-owner@example.com")
    theirs_project = Project.objects.for_user(other_owner).get()
    theirs, _ = api_key_create(
        project=theirs_project, name="Theirs", created_by=other_owner, expires_at=soon
    )
    their_pat, _ = personal_token_create(user=other_owner, name="Their CLI")
    long_ago = now - timedelta(days=200)
    ApiKey.objects.filter(pk__in=[mine.pk, theirs.pk]).update(created_at=long_ago)
    PersonalAccessToken.objects.filter(pk__in=[my_pat.pk, their_pat.pk]).update(expires_at=soon)
    with connection.cursor() as cursor:
        for table, pk in (
            (ApiKey._meta.db_table, mine.pk),
            (PersonalAccessToken._meta.db_table, my_pat.pk),
        ):
            cursor.execute(
                f"UPDATE {table} SET allowed_networks = %s, agent_names = %s "  # noqa: S608
                "WHERE id = %s",
                [UNREADABLE_JSON, UNREADABLE_JSON, pk],
            )
    mail.outbox.clear()

    call_command("send_token_expiry_reminders")
    call_command("detect_suspicious_activity")

    # Their key's reminder and their token's, and mine too: a reminder reads no JSON.
    assert sorted(m.to[0] for m in mail.outbox) == sorted([other_owner.email, user.email] * 2)
    unused = Flag.objects.filter(kind=Flag.Kind.UNUSED_KEY)
    assert set(unused.values_list("api_key_id", flat=True)) == {mine.pk, theirs.pk}
