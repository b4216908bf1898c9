"""The project's front page answers "is anything wrong?" from the same rows as the pages it
links to."""

from __future__ import annotations

import html as html_lib
import re
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project
from agents.models import Agent
from alerts.detection import detect
from apikeys.models import ApiKey
from overview.health import project_health
from overview.views import AGENTS_SHOWN
from tests.conftest import usage_call
from usage.writer import usage_write


def front(client, project):
    return client.get(reverse("overview:project_overview", args=[project.slug]))


def test_a_quiet_new_project_says_nothing_needs_a_look_and_how_to_start(signed_in, project):
    html = front(signed_in, project).content.decode()
    assert "Nothing needs a look" in html and "Get started" in html


def test_the_headers_button_says_what_it_does(signed_in, project):
    """The page's one primary button read "API keys", the name of the tab above it: a
    place, not what pressing it does."""
    html = front(signed_in, project).content.decode()
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    header = html[html.index('class="page-header"') : html.index('class="card', html.index("<h1"))]
    assert f'<a class="button button-primary" href="{keys}">Manage API keys</a>' in header


def test_calls_refusals_and_the_busiest_keys_are_counted_over_the_last_day(
    signed_in, project, make_key
):
    busy, _ = make_key(project, name="Busy")
    calm, _ = make_key(project, name="Calm")
    now = timezone.now()
    entries = [usage_call(now - timedelta(minutes=m), key=busy) for m in range(1, 8)]
    entries += [
        usage_call(
            now - timedelta(minutes=3), key=busy, status=403, error_code="insufficient_permissions"
        ),
        usage_call(now - timedelta(minutes=4), key=calm, status=401, error_code="expired_api_key"),
        usage_call(now - timedelta(minutes=5), key=calm, status=500, error_code="internal_error"),
        usage_call(now - timedelta(hours=25), key=calm),  # outside the day
    ]
    usage_write(entries)
    health = project_health(project=project, with_sign_ins=False)
    calls = health.calls
    assert (calls.total, calls.ok, calls.refused, calls.server_errors) == (10, 7, 2, 1)
    assert [(a.key.name, a.calls, a.refused) for a in health.active_keys] == [
        ("Busy", 8, 1),
        ("Calm", 2, 1),
    ]
    html = front(signed_in, project).content.decode()
    assert "thing" in html and "to look at" in html and "Get started" not in html
    assert reverse("usage:api_key_usage", args=[project.slug, busy.pk]) in html


def test_open_alerts_expiring_keys_and_keys_out_of_policy_are_listed(
    signed_in, project, make_key, user
):
    key, _ = make_key(project, name="Leaked")
    key.revoke(by=None)
    usage_write([usage_call(timezone.now(), key=key, status=401, error_code="expired_api_key")])
    detect(now=timezone.now() + timedelta(minutes=1))
    soon, _ = make_key(project, name="Soon")
    ApiKey.objects.filter(pk=soon.pk).update(expires_at=timezone.now() + timedelta(days=2))
    forever, _ = make_key(project, name="Forever")
    Project.objects.filter(pk=project.pk).update(max_key_lifetime_days=30)
    html = front(signed_in, project).content.decode()
    assert "still being tried" in html
    assert "Soon" in html and "Expires" in html
    assert "Forever" in html and "key policy" in html
    assert "Members&#x27; last sign-ins" in html or "Members' last sign-ins" in html


def test_members_who_are_not_owners_do_not_see_sign_ins(client, project, make_user):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    html = front(client, project).content.decode()
    assert "last sign-ins" not in html and "ada@example.com" not in html


def test_another_projects_front_page_is_404(signed_in, make_user):
    other = Membership.objects.get(user=make_user(email="other@example.com")).project
    assert front(signed_in, other).status_code == 404


def test_the_last_sign_in_is_the_audit_trails(client, user, project):
    client.post(
        reverse("accounts:login"),
        {"username": user.email, "password": "correct horse battery staple"},
    )
    health = project_health(project=project, with_sign_ins=True)
    [ada] = health.sign_ins
    assert ada.email == user.email and ada.at is not None


def test_the_agents_list_shows_the_first_by_name_and_says_how_many_more(signed_in, project):
    """A project may deploy agents without end (PUT /v1/agents/{name}); the page listed
    every one of them, each read with its whole configuration."""
    Agent.objects.bulk_create(
        Agent(project=project, name=f"bot-{n:03}") for n in range(AGENTS_SHOWN + 10)
    )
    html = front(signed_in, project).content.decode()
    # The first AGENTS_SHOWN of bot-000…bot-059 and my-agent, by name.
    assert "bot-000" in html and f"bot-{AGENTS_SHOWN - 1:03}" in html
    assert f"bot-{AGENTS_SHOWN:03}" not in html and "<code><bdi>my-agent</bdi></code>" not in html
    assert "and 11 more" in html and "GET /v1/agents" in html


def test_the_front_page_never_reads_the_agents_configurations(signed_in, project):
    Agent.objects.filter(project=project).update(config={"prompt": "x" * 60_000})
    with CaptureQueriesContext(connection) as queries:
        assert front(signed_in, project).status_code == 200
    agent_reads = [q["sql"] for q in queries if Agent._meta.db_table in q["sql"]]
    assert agent_reads and not any('"config"' in sql or ".config" in sql for sql in agent_reads)


def test_a_few_agents_are_all_listed_without_a_more_line(signed_in, project):
    html = front(signed_in, project).content.decode()
    assert "<code><bdi>my-agent</bdi></code>" in html and 'id="agents-more"' not in html


def test_the_days_calls_link_to_the_page_that_counts_the_same_calls(signed_in, project, api_key):
    """The front page counts the calls of the usage overview's "Last 24 hours"; its Calls
    figure leads there, where the same number stands, not to the log of every call ever."""
    key, _ = api_key
    now = timezone.now()
    usage_write(
        [usage_call(now - timedelta(minutes=m), key=key) for m in (1, 2, 3)]
        + [usage_call(now - timedelta(days=3), key=key)]
    )
    html = front(signed_in, project).content.decode()
    link = re.search(r'<dt><a href="([^"]+)">Calls</a></dt><dd>(\d+)</dd>', html)
    assert link, html
    assert link[2] == "3"
    overview = signed_in.get(html_lib.unescape(link[1])).context["overview"]
    assert overview.totals.requests == 3


def test_the_days_calls_figure_is_called_calls_on_the_page_it_leads_to(signed_in, project, api_key):
    """ "Calls 3" led to a page that showed the same figure as "Requests 3", while every
    table on that page (by hour, by address, by agent, by key) says Calls."""
    key, _ = api_key
    usage_write([usage_call(timezone.now() - timedelta(minutes=1), key=key)])
    html = front(signed_in, project).content.decode()
    link = re.search(r'<dt><a href="([^"]+)">Calls</a></dt><dd>1</dd>', html)
    assert link, html
    usage = signed_in.get(html_lib.unescape(link[1])).content.decode()
    assert "<dt>Calls</dt><dd>1</dd>" in usage
    assert ">Requests<" not in usage


def test_the_front_pages_open_alerts_show_the_high_ones_first_as_the_alerts_page_does(
    signed_in, project, api_key
):
    """It listed the five latest: newer medium alerts (a busy key's new networks) pushed
    a high one (a revoked key still tried) out of the list under "2 high"."""
    from alerts.models import Flag

    key, _ = api_key
    now = timezone.now()

    def flag(n: int, severity: str, minutes: int) -> None:
        Flag.objects.create(
            project=project,
            api_key=key,
            kind=Flag.Kind.NEW_NETWORK,
            severity=severity,
            dedupe_key=f"f{n}",
            summary=f"Alert number {n:02d}",
            first_seen=now - timedelta(minutes=minutes),
            last_seen=now - timedelta(minutes=minutes),
        )

    flag(1, Flag.Severity.HIGH, 60)
    for n in range(2, 8):
        flag(n, Flag.Severity.MEDIUM, 10 - n)
    html = front(signed_in, project).content.decode()
    shown = re.findall(r"Alert number (\d\d)", html)
    assert shown[0] == "01", shown
    assert shown[1:] == ["07", "06", "05", "04"]  # then the latest


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_the_front_page_reads_the_keys_of_the_alerts_it_shows_not_of_every_open_alert(
    project, make_key
):
    """The five most pressing open alerts were picked from a join of every open alert with
    its key: PostgreSQL joined them all before it sorted and cut to five, hashing the whole
    key table, every tenant's, on each visit of a project with many open alerts."""
    from alerts.models import Flag
    from tests.plans import plan_nodes, rows_read

    now = timezone.now()
    keys = [make_key(project, f"Key {n}")[0] for n in range(30)]
    Flag.objects.bulk_create(
        Flag(
            project=project,
            api_key=key,
            kind=Flag.Kind.NEW_NETWORK,
            severity=Flag.Severity.MEDIUM,
            dedupe_key=f"new-network:{key.pk}",
            summary=f"{key.name} used from a new network",
            first_seen=now - timedelta(minutes=n),
            last_seen=now - timedelta(minutes=n),
        )
        for n, key in enumerate(keys)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE apikeys_flag")
        cursor.execute("ANALYZE apikeys_apikey")

    with CaptureQueriesContext(connection) as captured:
        health = project_health(project=project, with_sign_ins=False)
    assert [flag.api_key.name for flag in health.recent_alerts] == [f"Key {n}" for n in range(5)]
    # The statements that read the alerts' keys: with the alerts, or by their ids.
    read = sum(
        rows_read(plan_nodes(q["sql"], analyze=True), "apikeys_apikey")
        for q in captured
        if '"apikeys_apikey"' in q["sql"]
        and ('FROM "apikeys_flag"' in q["sql"] or '"apikeys_apikey"."id" IN' in q["sql"])
    )
    assert read <= 5


@pytest.fixture
def leaked_key(project, api_key) -> tuple[ApiKey, datetime]:
    """The project's key, with an open alert an hour old (a new network: a leak seen), and
    the moment it was made at."""
    from alerts.models import Flag

    key, _ = api_key
    now = timezone.now()
    Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.NEW_NETWORK,
        severity=Flag.Severity.MEDIUM,
        dedupe_key="leak",
        summary="Used from a new network",
        first_seen=now - timedelta(hours=1),
        last_seen=now - timedelta(hours=1),
    )
    return key, now


def open_alerts(client, project) -> str:
    """The front page's Open alerts section, as HTML."""
    html = front(client, project).content.decode()
    return html[html.index('id="alerts-title"') :].split("</section>")[0]


def test_an_open_alert_says_when_and_from_where_its_key_was_last_used(
    signed_in, project, leaked_key
):
    """The front page's alert read "Last seen" from the alert, which a new network's alert
    sets when the network first called: in a leak it read an hour ago while the key went on
    calling from there until minutes before. As on the Alerts page's cards (2e85249), it
    says when the key was last used, and from which address."""
    key, now = leaked_key
    usage_write([usage_call(now - timedelta(minutes=9), key=key, ip="198.51.100.9")])
    section = open_alerts(signed_in, project)
    assert "key last used" in section and "from 198.51.100.9" in section
    assert "9\xa0minutes ago" in section


def test_an_open_alert_of_a_revoked_key_still_tried_says_when_it_was_last_refused(
    signed_in, project, leaked_key
):
    """A leaked key revoked and still tried read "key last used" from its last success, as
    if the leak had stopped: the last refusal, newer, is said beside it (as on the Alerts
    page's cards)."""
    key, now = leaked_key
    usage_write([usage_call(now - timedelta(minutes=50), key=key, ip="198.51.100.9")])
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=now - timedelta(minutes=40))
    refused = usage_call(
        now - timedelta(minutes=3),
        key=key,
        ip="2001:db8::9",
        status=401,
        error_code="expired_api_key",
    )
    usage_write([refused])
    section = open_alerts(signed_in, project)
    assert "key last used" in section and "50\xa0minutes ago" in section
    assert "still tried: key last refused" in section and "3\xa0minutes ago" in section
    assert "from 2001:db8::9 (1 call after revocation, its client tokens’ included)" in section
