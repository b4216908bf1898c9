"""A personal access token mints client tokens (POST /v1/client-tokens with the PAT and
X-Project), and their calls are in its log beside its own, marked with the client token.
Its log has the key log's Caller filter: the token itself, its client tokens, or both,
kept on every page, and its Download CSV holds exactly what the page lists."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ClientToken, PersonalAccessToken
from apikeys.services import client_token_create, personal_token_create
from tests.conftest import HTMX, exported_request_ids, log_export_link, log_walk, usage_call
from usage.writer import usage_write


@pytest.fixture
def pat(user: Any, project: Project) -> PersonalAccessToken:
    token, _ = personal_token_create(user=user, name="CI", expires_at=None)
    return token


@pytest.fixture
def minted(project: Project, pat: PersonalAccessToken) -> ClientToken:
    token, _ = client_token_create(project=project, personal_token=pat, context={})
    return token


@pytest.fixture
def calls(project: Project, pat: PersonalAccessToken, minted: ClientToken) -> dict[str, list[str]]:
    """Three calls of the PAT itself and two of its client token: each kind's request
    ids, newest first."""
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=m), pat=pat, project=project, request_id=f"req_o{m}")
            for m in (1, 3, 5)
        ]
        + [
            usage_call(now - timedelta(minutes=m), client_token=minted, request_id=f"req_c{m}")
            for m in (2, 4)
        ]
    )
    return {"own": ["req_o1", "req_o3", "req_o5"], "tokens": ["req_c2", "req_c4"]}


def usage_url(pat: PersonalAccessToken) -> str:
    return reverse("usage:personal_token_usage", args=[pat.pk])


def caller_field(html: str) -> str:
    field = re.search(r'<div class="field field-caller">(.*?)</div>', html, re.S)
    assert field is not None, html
    return field.group(1)


@pytest.mark.parametrize(
    ("caller", "kinds"),
    [("token", ["own"]), ("client_tokens", ["tokens"]), ("", ["own", "tokens"])],
)
def test_the_caller_filter_keeps_one_kind_of_call_on_every_page_and_in_the_export(
    signed_in: Client,
    pat: PersonalAccessToken,
    calls: dict[str, list[str]],
    caller: str,
    kinds: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("usage.personal_token_usage.PAGE_SIZE", 2)
    url = usage_url(pat)
    params = {"caller": caller} if caller else {}
    expected = sorted((i for kind in kinds for i in calls[kind]), key=lambda i: int(i[-1]))
    assert log_walk(signed_in, url, params) == expected
    response = signed_in.get(url, params)
    assert exported_request_ids(signed_in, log_export_link(response)) == expected
    assert log_walk(signed_in, url, {**params, "order": "oldest"}) == expected[::-1]


def test_the_caller_field_names_the_token_and_its_client_tokens(
    signed_in: Client, pat: PersonalAccessToken, calls: Any
) -> None:
    html = signed_in.get(usage_url(pat), {"caller": "client_tokens"}).content.decode()
    field = caller_field(html)
    assert 'value="client_tokens" selected' in field
    assert "The token itself" in field and "Its client tokens" in field
    assert "The token and its client tokens" in field
    assert "key" not in field.lower()


def test_the_export_of_the_unfiltered_log_is_every_call_of_the_token(
    signed_in: Client, pat: PersonalAccessToken, calls: dict[str, list[str]]
) -> None:
    response = signed_in.get(usage_url(pat))
    expected = sorted(calls["own"] + calls["tokens"], key=lambda i: int(i[-1]))
    assert exported_request_ids(signed_in, log_export_link(response)) == expected
    assert "every call of this token" in response.content.decode()


def test_the_export_is_its_owners_alone(
    client: Client, make_user: Any, pat: PersonalAccessToken, calls: Any
) -> None:
    client.force_login(make_user())
    export = reverse("usage:personal_token_usage_export", args=[pat.pk])
    assert client.get(export).status_code == 404


@pytest.mark.parametrize("value", ["key", "bogus", "\x00", "x" * 10_000])
def test_odd_callers_are_refused_beside_the_field(
    signed_in: Client, pat: PersonalAccessToken, value: str
) -> None:
    response = signed_in.get(usage_url(pat), {"caller": value})
    assert response.status_code == 400, value
    html = response.content.decode()
    field = caller_field(html)
    assert 'aria-invalid="true"' in field and "Choose a caller from the list" in field
    assert "\x00" not in html and "x" * 300 not in html
    htmx = signed_in.get(usage_url(pat), {"caller": value}, headers=HTMX)
    assert htmx.status_code == 200 and 'aria-invalid="true"' in htmx.content.decode()
    export = reverse("usage:personal_token_usage_export", args=[pat.pk])
    assert signed_in.get(export, {"caller": value}).status_code == 400


def test_the_token_itself_and_one_of_its_client_tokens_are_refused_together(
    signed_in: Client, pat: PersonalAccessToken, minted: ClientToken, calls: Any
) -> None:
    response = signed_in.get(usage_url(pat), {"caller": "token", "client_token": minted.public_id})
    assert response.status_code == 400
    field = caller_field(response.content.decode())
    assert "client token" in field and "token’s own" in field


def test_the_export_names_each_calls_project_as_the_page_does(
    signed_in: Client, project: Project, pat: PersonalAccessToken, calls: Any
) -> None:
    """A PAT's calls span projects, and its page names each call's: the file does too
    (the project's export needs no such column: its rows are all of one)."""
    import csv
    import io

    response = signed_in.get(usage_url(pat), {"caller": "client_tokens"})
    export = signed_in.get(log_export_link(response))
    body = b"".join(export.streaming_content).decode().lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [(row["project"], row["client_token_id"] != "") for row in rows] == [
        (project.slug, True),
        (project.slug, True),
    ]
    assert [row["key_name"] for row in rows] == ["CI", "CI"]
