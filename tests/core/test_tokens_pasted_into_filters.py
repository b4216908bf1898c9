"""A token pasted into a filter of a GET page (or of its CSV export) leaves the address:
not shown back is not enough, the URL is the browser's history, its address bar, the
Referer sent onward and the access log. The page is opened again without it, with a note
in its filters saying what happened."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from apikeys.services import client_token_create, personal_token_create
from tests.apikeys.test_secrets_never_leak import every_log_line  # noqa: F401
from tests.conftest import HTMX

PASTED_NOTE = "it was removed from the address"

# Each filter page (and export): its URL name, whose id it takes, and a filter it has.
PAGES: list[tuple[str, str, str]] = [
    ("usage:project_usage", "project", "ip"),
    ("usage:project_usage_export", "project", "ip"),
    ("usage:project_calls", "project", "client_token"),
    ("usage:project_calls_export", "project", "client_token"),
    ("usage:api_key_usage", "key", "client_token"),
    ("usage:personal_token_usage", "pat", "client_token"),
    ("usage:personal_token_usage_export", "pat", "client_token"),
    ("accounts:project_audit", "project", "ip"),
    ("accounts:project_audit_csv", "project", "ip"),
    ("accounts:user_audit", "", "ip"),
    ("accounts:user_audit_csv", "", "ip"),
    ("alerts:flag_list", "project", "key"),
    ("apikeys:api_key_list", "project", "q"),
    ("apikeys:client_token_list", "project", "key"),
]
EXPORTS = {name for name, _, _ in PAGES if "export" in name or name.endswith("_csv")}
# An export asked with a token goes to its page, which says so: downloaded without that
# filter, the file held more rows than asked for and nothing said why.
PAGE_OF_EXPORT = {
    "usage:project_usage_export": "usage:project_usage",
    "usage:project_calls_export": "usage:project_calls",
    "usage:personal_token_usage_export": "usage:personal_token_usage",
    "accounts:project_audit_csv": "accounts:project_audit",
    "accounts:user_audit_csv": "accounts:user_audit",
}


@pytest.fixture
def tokens(user, project, api_key) -> dict[str, str]:
    """A real token of each kind, and the ids the pages take."""
    key, key_secret = api_key
    _, client_secret = client_token_create(project=project, context={}, api_key=key)
    pat, pat_secret = personal_token_create(user=user, name="Laptop", projects=[project])
    return {
        "sk": key_secret,
        "ct": client_secret,
        "pat": pat_secret,
        "project": project.slug,
        "key": f"{project.slug}/{key.pk}",
        "pat_id": str(pat.pk),
    }


def _page_url(name: str, takes: str, tokens: dict[str, str]) -> str:
    args: list[str | int] = {
        "project": [tokens["project"]],
        "key": tokens["key"].split("/"),
        "pat": [tokens["pat_id"]],
        "": [],
    }[takes]
    return reverse(name, args=args)


PAGE_IDS = [name for name, _, _ in PAGES]


@pytest.mark.parametrize("kind", ["sk", "ct", "pat"])
@pytest.mark.parametrize(("name", "takes", "field"), PAGES, ids=PAGE_IDS)
def test_a_token_pasted_into_a_filter_is_taken_out_of_the_address_and_noted_beside_it(
    signed_in: Client,
    tokens: dict[str, str],
    every_log_line: pytest.LogCaptureFixture,  # noqa: F811
    name: str,
    takes: str,
    field: str,
    kind: str,
) -> None:
    url = _page_url(name, takes, tokens)
    opened = _page_url(PAGE_OF_EXPORT.get(name, name), takes, tokens)
    secret = tokens[kind]
    # Pasted with the spaces a copy brings, beside a filter that is kept.
    response = signed_in.get(url, {field: f" {secret} ", "sort": "name"})
    assert response.status_code == 303
    assert response["Location"] == f"{opened}?{urlencode({'sort': 'name'})}"
    assert secret[12:] not in response.content.decode()
    page = signed_in.get(response["Location"])
    assert page.status_code == 200 and not page.streaming
    assert secret[12:] not in page.content.decode()
    assert PASTED_NOTE in page.content.decode()
    # Said once: the page opened again does not repeat it.
    assert PASTED_NOTE not in signed_in.get(response["Location"]).content.decode()
    assert secret[12:] not in every_log_line.text


@pytest.mark.parametrize(("name", "takes", "field"), PAGES, ids=PAGE_IDS)
def test_a_token_pasted_into_a_filter_with_htmx_opens_the_page_without_it(
    signed_in: Client, tokens: dict[str, str], name: str, takes: str, field: str
) -> None:
    url = _page_url(name, takes, tokens)
    secret = tokens["ct"]
    response = signed_in.get(url, {field: secret}, headers=HTMX)
    # Not swapped in (where the address htmx pushes would be the one asked for): the
    # browser goes to the page without it.
    assert response["HX-Redirect"] == _page_url(PAGE_OF_EXPORT.get(name, name), takes, tokens)
    assert secret[12:] not in response.content.decode()
    for header in ("HX-Push-Url", "HX-Replace-Url", "Location"):
        assert secret[12:] not in response.get(header, "")


def test_a_token_pasted_as_a_parameters_name_is_taken_out_too(
    signed_in: Client, tokens: dict[str, str]
) -> None:
    url = _page_url("usage:project_calls", "project", tokens)
    response = signed_in.get(f"{url}?{tokens['sk']}=&status=401")
    assert response.status_code == 303 and response["Location"] == f"{url}?status=401"


def test_a_token_pasted_before_signing_in_is_not_carried_to_the_sign_in_page(
    client: Client, tokens: dict[str, str]
) -> None:
    """The sign-in page's ?next= would otherwise hold it: its address, history and log."""
    url = _page_url("usage:project_calls", "project", tokens)
    response = client.get(url, {"client_token": tokens["ct"]})
    assert response.status_code == 303 and response["Location"] == url
    assert tokens["ct"][12:] not in client.get(url)["Location"]


def test_a_token_pasted_by_someone_signed_out_writes_no_session(
    client: Client, tokens: dict[str, str]
) -> None:
    """The note is for the person whose page it is: kept for anyone signed out, each
    such GET stored a session row, as many as anyone cared to send."""
    url = _page_url("usage:project_calls", "project", tokens)
    sessions_before = Session.objects.count()

    response = client.get(url, {"client_token": tokens["ct"]})

    assert response.status_code == 303 and response["Location"] == url
    assert Session.objects.count() == sessions_before
    assert settings.SESSION_COOKIE_NAME not in response.cookies
