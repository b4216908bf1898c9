"""Client tokens that ended long ago are removed: prune_client_tokens, run daily. A backend
mints one per browser session, and every row stayed for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from alerts.models import Flag
from apikeys import retention
from apikeys.models import CLIENT_TOKEN_MAX_TTL, ApiKey, ClientToken
from apikeys.retention import KEEP, client_tokens_prune
from apikeys.services import api_key_create, client_token_create
from apikeys.views.client_tokens import RECENT
from scheduler.jobs import jobs
from tests.conftest import row_locked_elsewhere, statements_time_out, usage_call
from tests.plans import plan_nodes
from usage.models import UsageRecord
from usage.retention import partition_name, usage_partitions_ensure
from usage.writer import usage_write


def minted(key: ApiKey, *, days_ago: float, ttl: timedelta = timedelta(hours=1)) -> ClientToken:
    """A client token of `key`'s, minted `days_ago` days ago, that lived `ttl`."""
    token, _ = client_token_create(project=key.project, api_key=key, context={})
    at = timezone.now() - timedelta(days=days_ago)
    ClientToken.objects.filter(pk=token.pk).update(created_at=at, expires_at=at + ttl)
    return ClientToken.objects.get(pk=token.pk)


def kept() -> set[int]:
    return set(ClientToken.objects.values_list("pk", flat=True))


def other_projects_key(make_user) -> ApiKey:
    owner = make_user(email="other-owner@example.com")
    theirs = Project.objects.for_user(owner).get()
    return api_key_create(project=theirs, name="Theirs", created_by=owner)[0]


def test_nothing_the_client_tokens_page_shows_is_ever_old_enough():
    """The page lists the tokens alive in the last week; one minted just before that lived
    at most a day."""
    assert RECENT + timedelta(seconds=CLIENT_TOKEN_MAX_TTL) < KEEP


def test_tokens_that_ended_long_ago_go_and_the_others_stay(api_key, user):
    key, _ = api_key
    ended_long_ago = minted(key, days_ago=KEEP.days + 2)
    revoked_long_ago = minted(key, days_ago=KEEP.days + 3)
    revoked_long_ago.revoke(by=user)
    ClientToken.objects.filter(pk=revoked_long_ago.pk).update(
        revoked_at=revoked_long_ago.created_at + timedelta(minutes=5)
    )
    # Minted long ago, but lived a day: ended just inside KEEP.
    ended_within = minted(key, days_ago=KEEP.days + 0.5, ttl=timedelta(days=1))
    ended_last_week = minted(key, days_ago=8)
    revoked_today = minted(key, days_ago=0.01)
    revoked_today.revoke(by=user)
    working = minted(key, days_ago=0, ttl=timedelta(hours=2))
    result = client_tokens_prune()
    assert (result.removed, result.skipped) == (2, 0)
    assert kept() == {ended_within.pk, ended_last_week.pk, revoked_today.pk, working.pk}
    assert ended_long_ago.pk not in kept() and revoked_long_ago.pk not in kept()
    assert client_tokens_prune().removed == 0  # safe to run again


def test_a_token_an_alert_points_to_stays_with_its_alert(api_key, project):
    """Flag.client_token cascades: removing the token would remove the alert."""
    key, _ = api_key
    token = minted(key, days_ago=KEEP.days + 30)
    now = timezone.now()
    flag = Flag.objects.create(
        project=project,
        api_key=key,
        client_token=token,
        kind=Flag.Kind.CLIENT_TOKEN_MANY_IPS,
        severity="medium",
        dedupe_key="test:1",
        summary="Client token used from many addresses",
        first_seen=now,
        last_seen=now,
    )
    assert client_tokens_prune().removed == 0
    assert Flag.objects.filter(pk=flag.pk).exists() and kept() == {token.pk}


def test_a_token_the_usage_log_still_shows_stays_until_the_log_lets_it_go(api_key):
    """UsageRecord.client_token cascades: removing the token would remove its calls from
    the key's log, among them calls made with it long after it ended (refused, still
    logged). Once the log's retention has removed them, it goes."""
    key, _ = api_key
    token = minted(key, days_ago=KEEP.days + 30)
    usage_write(
        [usage_call(timezone.now(), client_token=token, status=401, error_code="expired_api_key")]
    )
    assert client_tokens_prune().removed == 0
    assert UsageRecord.objects.filter(client_token=token).count() == 1
    UsageRecord.objects.all().delete()
    assert client_tokens_prune().removed == 1 and not kept()


def test_it_deletes_in_batches_project_by_project_until_none_is_left(
    api_key, make_user, monkeypatch
):
    key, _ = api_key
    theirs = other_projects_key(make_user)
    for n in range(5):
        minted(key, days_ago=KEEP.days + 1 + n)
        minted(theirs, days_ago=KEEP.days + 1 + n)
    working = minted(key, days_ago=0, ttl=timedelta(hours=2))
    monkeypatch.setattr(retention, "BATCH", 2)
    assert client_tokens_prune().removed == 10
    assert kept() == {working.pk}


def test_the_command_says_how_many_it_removed(api_key):
    key, _ = api_key
    minted(key, days_ago=KEEP.days + 1)
    out = StringIO()
    call_command("prune_client_tokens", stdout=out)
    assert out.getvalue() == "Removed 1 client token.\n"
    call_command("prune_client_tokens", stdout=out)
    assert out.getvalue().endswith("Removed 0 client tokens.\n")


def test_the_scheduler_runs_it_daily_and_the_readme_lists_it():
    from pathlib import Path

    [job] = [job for job in jobs() if job.name == "prune_client_tokens"]
    assert job.command == ("prune_client_tokens",) and job.every == 86400
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert "| `python manage.py prune_client_tokens` | daily at 00:30 UTC |" in readme


def test_a_removed_tokens_calls_and_pages_still_answer(api_key, signed_in, project):
    """What named the token still works without its row: the page, the API's answer to
    the token (unknown now, as any token never minted)."""
    key, _ = api_key
    token, secret = client_token_create(project=project, api_key=key, context={})
    ClientToken.objects.filter(pk=token.pk).update(
        created_at=timezone.now() - KEEP - timedelta(days=2),
        expires_at=timezone.now() - KEEP - timedelta(days=1),
    )
    assert client_tokens_prune().removed == 1
    page = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug]))
    assert page.status_code == 200
    answer = Client().get("/client/token", headers={"Authorization": f"Bearer {secret}"})
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.django_db(transaction=True)
def test_a_project_whose_token_is_held_elsewhere_waits_and_the_others_go_now(
    api_key, make_user, short_lock_timeout
):
    key, _ = api_key
    theirs = other_projects_key(make_user)
    mine = minted(key, days_ago=KEEP.days + 1)
    others = minted(theirs, days_ago=KEEP.days + 1)
    with row_locked_elsewhere(mine):
        result = client_tokens_prune()
    assert (result.removed, result.skipped) == (1, 1)
    assert kept() == {mine.pk} and others.pk not in kept()
    assert client_tokens_prune().removed == 1  # the next run, once it is let go
    assert not kept()


@pytest.mark.django_db(transaction=True)
def test_a_project_whose_statement_times_out_costs_only_itself(api_key, make_user):
    key, _ = api_key
    theirs = other_projects_key(make_user)
    mine = minted(key, days_ago=KEEP.days + 1)
    minted(theirs, days_ago=KEEP.days + 1)
    project_id = key.project_id

    def its_delete(sql: str, params) -> bool:
        return sql.startswith("DELETE") and project_id in params

    with statements_time_out(its_delete):
        result = client_tokens_prune()
    assert (result.removed, result.skipped) == (1, 1)
    assert kept() == {mine.pk}


def test_a_lost_connection_still_stops_the_run(api_key, make_user, monkeypatch):
    key, _ = api_key
    minted(key, days_ago=KEEP.days + 1)
    minted(other_projects_key(make_user), days_ago=KEEP.days + 1)

    def connection_lost(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(retention, "_project_prune", connection_lost)
    with pytest.raises(OperationalError):
        client_tokens_prune()


def called(token: ClientToken, at) -> None:
    usage_write([usage_call(at, client_token=token, status=401, error_code="expired_api_key")])


def deletes_in(run) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        run()
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith("DELETE")]


def test_a_run_with_nothing_to_remove_checks_no_project_on_its_own(api_key, make_user):
    """Each project's DELETE checked its tokens against the usage log, planned across
    every daily partition (13-70 ms with 108): 2,000 projects whose old tokens the log
    keeps took 55 s a run that removed nothing. Only projects with a token to remove
    are now pruned one by one."""
    key, _ = api_key
    theirs = other_projects_key(make_user)
    for parent in (key, theirs):
        token = minted(parent, days_ago=KEEP.days + 5)
        called(token, timezone.now() - timedelta(days=2))
    before = kept()
    assert deletes_in(client_tokens_prune) == []
    assert kept() == before

    removable = minted(theirs, days_ago=KEEP.days + 3)
    [delete] = deletes_in(client_tokens_prune)
    assert kept() == before - {removable.pk}


def test_a_call_logged_just_before_its_token_was_minted_still_keeps_it(api_key):
    """A call is logged at its server's time, which may be a little behind the one that
    minted the token: the lower bound on the log's days leaves room for that."""
    key, _ = api_key
    token = minted(key, days_ago=KEEP.days + 5)
    called(token, token.created_at - timedelta(minutes=10))
    assert client_tokens_prune().removed == 0 and kept() == {token.pk}


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="only PostgreSQL partitions the log by day"
)
def test_a_projects_delete_is_planned_on_the_days_since_its_oldest_token_alone(api_key):
    key, _ = api_key
    today = timezone.now().date()
    usage_partitions_ensure(start_day=today - timedelta(days=60), end_day=today)
    oldest = minted(key, days_ago=KEEP.days + 10)
    minted(key, days_ago=KEEP.days + 2)
    [delete] = deletes_in(client_tokens_prune)

    scanned = {n["Relation Name"] for n in plan_nodes(delete) if "Relation Name" in n}
    partitions = {name for name in scanned if name.startswith("apikeys_usagerecord_p")}
    first_day = oldest.created_at.date() - timedelta(days=1)
    assert partitions and min(partitions) >= partition_name(first_day), sorted(partitions)


def test_a_token_minted_at_the_calendars_first_moment_is_removed_with_the_rest(api_key):
    """A token whose created_at is year 1 (written by hand or an import: no service makes
    one): the oldest of its project's page, from which an hour of clock slack was taken
    in Python, which overflowed. The project was skipped, logged, on every run for good,
    and none of its old tokens went again."""
    key, _ = api_key
    first_moment = datetime.min.replace(tzinfo=UTC)
    odd = minted(key, days_ago=KEEP.days + 1)
    ClientToken.objects.filter(pk=odd.pk).update(created_at=first_moment, expires_at=first_moment)
    ordinary = minted(key, days_ago=KEEP.days + 1)
    result = client_tokens_prune()
    assert (result.removed, result.skipped) == (2, 0)
    assert odd.pk not in kept() and ordinary.pk not in kept()
