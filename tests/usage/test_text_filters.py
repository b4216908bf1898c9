"""The project's call log, a key's and a personal access token's narrow to a user agent
(any part of it, any case) and to a path (its start): a leaked key's attacker often calls
with one library's user agent (python-requests/2.31) or at one path. Neither has an index
to walk, so each searches at most a day of calls at a time
(usage.key_usage.TEXT_SEARCH_SPAN): the form fills in the last day when no range is given,
and says so. Every test runs on the three logs (`log`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey
from apikeys.services import personal_token_create
from tests.conftest import (
    HTMX,
    exported_request_ids,
    log_export_link,
    log_next_link,
    log_walk,
    usage_call,
)
from tests.plans import plan_nodes
from usage.forms import KeyLogFilterForm, ProjectLogFilterForm, TextLogFilterForm
from usage.key_usage import NEWEST_FIRST, PAGE_SIZE, TEXT_SEARCH_SPAN
from usage.models import UsageRecord, UsageRecordQuerySet
from usage.personal_token_usage import pat_calls
from usage.project_log import project_calls
from usage.writer import usage_write

ATTACKER = "python-requests/2.31.0"


@pytest.fixture
def now() -> datetime:
    return timezone.now()


@pytest.fixture
def calls(key: ApiKey, make_key, now: datetime, log: Log) -> None:
    """Sixty calls of the attacker's library at the key list, in the last hour, made with
    the log's token (the key, or the personal access token); the project's own SDK calling
    its agent beside them, with another key and (every tenth minute) with the log's token,
    so that the log holds calls to leave out; and the attacker two days ago."""
    other, _ = make_key(key.project, name="Other")
    made_with = log.made_with
    entries = []
    for i in range(60):
        at = now - timedelta(minutes=i, seconds=5)
        entries += [
            usage_call(at, **made_with, user_agent=ATTACKER, path=f"/v1/api-keys/{i}/roll"),
            usage_call(at - timedelta(seconds=1), key=other, path="/v1/agents/my-agent/invoke"),
        ]
        if i % 10 == 0:
            entries.append(usage_call(at - timedelta(seconds=2), **made_with, path="/v1/agents"))
    entries += [
        usage_call(now - timedelta(days=2), **made_with, user_agent=ATTACKER, path="/v1/api-keys"),
        usage_call(now - timedelta(minutes=90), **made_with, user_agent="Python-Requests/2.28"),
    ]
    usage_write(entries)


def calls_url(project: Project) -> str:
    return reverse("usage:project_calls", args=[project.slug])


@dataclass(frozen=True)
class Log:
    """One of the three call logs with the text filters: its page, a filter of it that is
    not a text filter, its form, the rows its first page reads, and the token its calls
    are made with (usage_call's arguments)."""

    url: str
    other_filter: dict[str, str]
    form: Callable[[dict[str, str]], TextLogFilterForm]
    records: Callable[[TextLogFilterForm], UsageRecordQuerySet]
    made_with: dict[str, object]
    has_export: bool = True


def project_log(key: ApiKey) -> Log:
    def records(form: TextLogFilterForm) -> UsageRecordQuerySet:
        assert isinstance(form, ProjectLogFilterForm)
        return form.project_filters().apply(project_calls(key.project))

    return Log(
        url=calls_url(key.project),
        other_filter={"key": str(key.pk)},
        form=lambda data: ProjectLogFilterForm(data, project=key.project),
        records=records,
        made_with={"key": key},
    )


def key_log(key: ApiKey) -> Log:
    return Log(
        url=reverse("usage:api_key_usage", args=[key.project.slug, key.pk]),
        other_filter={"outcome": "ok"},
        form=KeyLogFilterForm,
        records=lambda form: form.filters().apply(UsageRecord.objects.for_key(key)),
        made_with={"key": key},
    )


def pat_log(key: ApiKey) -> Log:
    """The log of a personal access token of the key's maker, acting on the key's project
    (the person signed in: a PAT's log is its owner's alone)."""
    assert key.created_by is not None
    pat, _ = personal_token_create(user=key.created_by, name="CI", expires_at=None)
    return Log(
        url=reverse("usage:personal_token_usage", args=[pat.pk]),
        other_filter={"outcome": "ok"},
        form=TextLogFilterForm,
        records=lambda form: form.filters().apply(pat_calls(pat)),
        made_with={"pat": pat, "project": key.project},
        has_export=False,
    )


@pytest.fixture(params=[project_log, key_log, pat_log], ids=["project", "key", "pat"])
def log(request, key: ApiKey) -> Log:
    return request.param(key)


def newest_first(rows) -> list[str]:
    return list(rows.order_by(*NEWEST_FIRST).values_list("request_id", flat=True))


def within_a_day(now: datetime):
    return UsageRecord.objects.filter(created_at__gte=now - TEXT_SEARCH_SPAN)


# -- User agent -----------------------------------------------------------------------------


def test_the_user_agent_filter_finds_any_part_in_any_case_on_every_page(
    signed_in, key, calls, now, log
):
    shown = log_walk(signed_in, log.url, {"user_agent": "PYTHON-requests"})
    assert shown == newest_first(within_a_day(now).filter(user_agent__icontains="python-req"))
    assert len(shown) == 61 > PAGE_SIZE  # both versions, not the call two days ago


def test_the_pager_the_export_and_oldest_first_keep_the_user_agent(signed_in, key, calls, log):
    url = log.url
    newest = log_walk(signed_in, url, {"user_agent": "requests/2.31"})
    assert len(newest) == 60
    if log.has_export:
        response = signed_in.get(url, {"user_agent": "requests/2.31"})
        assert exported_request_ids(signed_in, log_export_link(response)) == newest
    oldest = log_walk(signed_in, url, {"user_agent": "requests/2.31", "order": "oldest"})
    assert oldest == newest[::-1]


def test_percent_and_underscore_are_matched_as_themselves(signed_in, key, now, log):
    usage_write(
        [
            usage_call(
                now - timedelta(minutes=1), **log.made_with, user_agent="scan 100% v_2", path="/a_b"
            ),
            usage_call(
                now - timedelta(minutes=2), **log.made_with, user_agent="scan 100x vx2", path="/axb"
            ),
        ]
    )
    url = log.url
    for params in ({"user_agent": "0% v_"}, {"user_agent": "%"}, {"path": "/a_"}):
        rows = signed_in.get(url, params).context["page"].rows
        assert [r.path for r in rows] == ["/a_b"], params


@pytest.mark.parametrize(
    ("user_agent", "typed"),
    [
        ("Café-Client/1.0", "CAFÉ-client"),
        ("ÉCOLE-SDK/2", "école"),
        ("İstanbul-Bot/1", "istanbul"),
        ("ΟΔΟΣ/1", "οδοσ/"),
        ("scan\\tool/1", "SCAN\\T"),
    ],
)
def test_letters_beyond_ascii_are_found_in_any_case_on_either_database(
    signed_in, key, now, user_agent, typed
):
    """Found in review: SQLite's LIKE folds ASCII letters only, so "CAFÉ" found nothing
    there while PostgreSQL's ILIKE found the call: the two databases answered differently."""
    usage_write([usage_call(now - timedelta(minutes=1), key=key, user_agent=user_agent)])
    url = calls_url(key.project)
    for params in ({"user_agent": typed}, {"user_agent": typed.upper()}):
        rows = signed_in.get(url, params).context["page"].rows
        assert [r.user_agent for r in rows] == [user_agent], params


def test_the_path_start_ignores_the_case_of_letters_beyond_ascii(signed_in, key, now):
    usage_write([usage_call(now - timedelta(minutes=1), key=key, path="/v1/agents/écho/invoke")])
    rows = signed_in.get(calls_url(key.project), {"path": "/V1/AGENTS/ÉCHO"}).context["page"].rows
    assert [r.path for r in rows] == ["/v1/agents/écho/invoke"]


def test_a_sharp_s_is_not_two_letters_on_either_database(signed_in, key, now):
    """ILIKE folds one letter at a time: ß is not "ss" on PostgreSQL, nor here."""
    usage_write([usage_call(now - timedelta(minutes=1), key=key, user_agent="Straße/1")])
    url = calls_url(key.project)
    assert signed_in.get(url, {"user_agent": "STRASSE"}).context["page"].rows == []
    assert len(signed_in.get(url, {"user_agent": "STRAßE"}).context["page"].rows) == 1


# -- Path -----------------------------------------------------------------------------------


def test_the_path_filter_finds_the_calls_whose_path_starts_with_it(signed_in, key, calls, now, log):
    url = log.url
    shown = log_walk(signed_in, url, {"path": "/v1/api-keys"})
    assert shown == newest_first(within_a_day(now).filter(path__startswith="/v1/api-keys"))
    assert len(shown) == 60
    one = log_walk(signed_in, url, {"path": "/v1/api-keys/7/roll"})
    assert len(one) == 1
    assert log_walk(signed_in, url, {"path": "/v1/api-keys/7/roll", "user_agent": "reminix"}) == []


def test_a_path_must_start_with_a_slash(signed_in, key, calls, log):
    response = signed_in.get(log.url, {"path": "v1/api-keys"})
    assert response.status_code == 400
    field = re.search(r'<div class="field field-path">(.*?)</div>', response.content.decode(), re.S)
    assert field is not None and "Enter the start of a path" in field.group(1)


# -- A day at a time ------------------------------------------------------------------------


def test_without_a_range_the_last_day_is_searched_and_the_page_says_so(signed_in, key, calls, log):
    response = signed_in.get(log.url, {"user_agent": ATTACKER})
    html = response.content.decode()
    assert "searched 24 hours at a time" in html
    since = re.search(r'name="since" value="([^"]+)"', html)
    until = re.search(r'name="until" value="([^"]+)"', html)
    assert since and until  # the day searched, in the fields, to be moved back
    # The address keeps the day, so a reload or a later page reads the same calls.
    older = log_next_link(response)
    assert older is not None and "since" in parse_qs(urlsplit(older).query)


def test_an_earlier_day_is_searched_when_asked(signed_in, key, calls, now, log):
    day_before = now - timedelta(days=2)
    params = {
        "user_agent": ATTACKER,
        "since": f"{day_before - timedelta(hours=1):%Y-%m-%d %H:%M}",
        "until": f"{day_before + timedelta(hours=1):%Y-%m-%d %H:%M}",
    }
    rows = signed_in.get(log.url, params).context["page"].rows
    assert [r.path for r in rows] == ["/v1/api-keys"]


def test_a_range_longer_than_a_day_is_refused_beside_from(signed_in, key, calls, now, log):
    for params in (
        {"path": "/v1", "since": f"{now - timedelta(days=3):%Y-%m-%d %H:%M}"},
        {"user_agent": "x", "since": "2026-01-01 00:00", "until": "2026-01-03 00:00"},
    ):
        response = signed_in.get(log.url, params)
        assert response.status_code == 400, params
        html = response.content.decode()
        field = re.search(r'<div class="field field-since">(.*?)</div>', html, re.S)
        assert field is not None and "at most 24 hours" in field.group(1)


def test_other_filters_keep_their_whole_history(signed_in, key, calls, log):
    """The bound is the text filters': an outcome or a key still reads every day."""
    html = signed_in.get(log.url, log.other_filter).content.decode()
    assert "24 hours at a time" not in html
    assert re.search(r'name="since" value="[^"]', html) is None


# -- What is not a user agent or a path -----------------------------------------------------

ODD = ["a\x00b", "\x00", "x" * 10_000, "a\nb", "\x1b[31m", "\ufeffbom"]


@pytest.mark.parametrize("value", ODD, ids=lambda v: repr(v)[:20])
@pytest.mark.parametrize("name", ["user_agent", "path"])
def test_odd_text_is_refused_beside_its_field_and_not_shown_back(signed_in, key, name, value, log):
    value = f"/{value}" if name == "path" else value
    for url in (
        log.url,
        reverse("usage:project_calls_export", args=[key.project.slug]),
    ):
        response = signed_in.get(url, {name: value})
        assert response.status_code == 400, (url, value)
        html = response.content.decode()
        field = re.search(
            rf'<div class="field field-{name.replace("_", "-")}">(.*?)</div>', html, re.S
        )
        assert field is not None and 'aria-invalid="true"' in field.group(1)
        assert "\x00" not in html and "x" * 300 not in html and "\x1b" not in html
    htmx = signed_in.get(log.url, {name: value}, headers=HTMX)
    assert htmx.status_code == 200 and 'aria-invalid="true"' in htmx.content.decode()


@pytest.mark.parametrize("name", ["user_agent", "path"])
def test_a_lone_surrogates_bytes_are_answered(signed_in, key, name, log):
    for raw in ("%ED%A0%80", "%FF", "%2F%ED%A0%80"):
        response = signed_in.get(f"{log.url}?{name}={raw}")
        assert response.status_code in (200, 400), raw


def test_a_lone_surrogate_given_to_the_form_is_refused(key, log):
    for name, value in (("user_agent", "a\ud800"), ("path", "/\udfff")):
        form = log.form({name: value})
        assert not form.is_valid() and name in form.errors


def test_text_up_to_the_columns_length_is_searched(signed_in, key, now, log):
    long = "M" * 255
    usage_write([usage_call(now - timedelta(minutes=1), **log.made_with, user_agent=long)])
    rows = signed_in.get(log.url, {"user_agent": long}).context["page"].rows
    assert len(rows) == 1


@pytest.mark.parametrize("name", ["user_agent", "path"])
def test_a_key_pasted_into_the_text_filters_is_neither_searched_nor_kept(
    signed_in, api_key, name, log
):
    key, secret = api_key
    url = log.url
    value = f"/v1/agents/{secret}/invoke" if name == "path" else f"curl {secret}"
    response = signed_in.get(url, {name: value, "status": "401"})
    assert response.status_code == 303
    assert response["Location"] == f"{url}?status=401"
    page = signed_in.get(response["Location"]).content.decode()
    assert "not searched for" in page and secret not in page


# -- PostgreSQL's plan ----------------------------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's planner")
def test_a_user_agent_page_reads_only_the_days_partitions(key, calls, log):
    """The text test runs on each row: the day's bound is what keeps it from every row of
    every partition, and the page still walks the time index in its order."""
    form = log.form({"user_agent": "requests"})
    assert form.is_valid(), form.errors
    records = log.records(form)
    nodes = plan_nodes(records.order_by(*NEWEST_FIRST)[: PAGE_SIZE + 1])
    assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
    scans = [n for n in nodes if n.get("Relation Name", "").startswith("apikeys_usagerecord")]
    assert scans and all("created_at" in n.get("Index Cond", "") for n in scans), scans
    assert len({n["Relation Name"] for n in scans}) <= 3  # the day spans two days, and default
