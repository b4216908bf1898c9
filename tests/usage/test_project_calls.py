"""The project-wide call log: every token kind, the per-key filters plus key, token type and
request id, keyset pages, one call in full; another project's calls never."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from apikeys.services import client_token_create, personal_token_create
from tests.conftest import usage_call
from usage.writer import usage_write


def calls_url(project, **params):
    url = reverse("usage:project_calls", args=[project.slug])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")


@pytest.fixture
def mixed(project, user, make_key):
    """Calls of two keys, a client token and a PAT, in this project and another."""
    now = timezone.now()
    prod, _ = make_key(project, name="Production")
    ci, _ = make_key(project, name="CI")
    ct, _ = client_token_create(project=project, context={"u": 1}, api_key=prod)
    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    entries = [usage_call(now - timedelta(seconds=s), key=prod) for s in range(1, 61)]
    entries += [
        usage_call(
            now - timedelta(minutes=2),
            key=ci,
            status=403,
            error_code="insufficient_permissions",
            ip="192.0.2.50",
        ),
        usage_call(now - timedelta(minutes=3), client_token=ct),
        usage_call(now - timedelta(minutes=4), pat=pat, project=project),
    ]
    usage_write(entries)
    return {"prod": prod, "ci": ci, "ct": ct, "pat": pat, "now": now}


def test_every_kind_of_token_is_in_one_log_newest_first_in_pages(signed_in, project, mixed):
    first = signed_in.get(calls_url(project))
    rows = first.context["page"].rows
    assert len(rows) == 50 and rows[0].created_at >= rows[-1].created_at
    second = signed_in.get(first.context["links"]["older"])
    kinds = {r.token_kind for r in second.context["page"].rows}
    assert kinds == {"api_key", "client_token", "personal_access_token"}
    assert len(second.context["page"].rows) == 13


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"token_kind": "personal_access_token"}, 1),
        ({"token_kind": "client_token"}, 1),
        ({"outcome": "auth_failure"}, 1),
        ({"ip": "192.0.2.50"}, 1),
        ({"status": "403"}, 1),
    ],
)
def test_each_filter_narrows_the_log(signed_in, project, mixed, params, expected):
    page = signed_in.get(calls_url(project, **params)).context["page"]
    assert len(page.rows) == expected


def test_the_key_and_request_id_filters_and_the_detail_of_one_call(signed_in, project, mixed):
    ci = mixed["ci"]
    [row] = signed_in.get(calls_url(project, key=ci.pk)).context["page"].rows
    found = signed_in.get(calls_url(project, request_id=row.request_id)).context["page"].rows
    assert [r.pk for r in found] == [row.pk]
    detail = signed_in.get(reverse("usage:project_call", args=[project.slug, row.request_id]))
    html = detail.content.decode()
    assert detail.status_code == 200 and "insufficient_permissions" in html and "192.0.2.50" in html


def test_a_calls_page_names_its_token_type_in_words(signed_in, project, mixed):
    """The call's page gave its token type as stored, "api_key"; the filter above the log
    offers "API key", and so does the page now."""
    for stored, words in [
        ("api_key", "API key"),
        ("client_token", "Client token"),
        ("personal_access_token", "Personal access token"),
    ]:
        row = signed_in.get(calls_url(project, token_kind=stored)).context["page"].rows[0]
        page = signed_in.get(reverse("usage:project_call", args=[project.slug, row.request_id]))
        assert f"<dt>Token type</dt><dd>{words}</dd>" in page.content.decode(), stored


def test_a_calls_page_leads_back_to_the_log_as_the_other_sub_pages_do(signed_in, project, mixed):
    """Its "← Calls" was a plain body-text link; a key's usage page, a webhook's and the
    alert rules lead back with the quiet back-link above their heading."""
    row = signed_in.get(calls_url(project)).context["page"].rows[0]
    html = signed_in.get(reverse("usage:project_call", args=[project.slug, row.request_id]))
    back = f'<p class="back-link"><a href="{calls_url(project)}">← Calls</a></p>'
    assert back in html.content.decode()


@pytest.mark.parametrize(
    "odd",
    [
        {"key": "²"},
        {"key": "9" * 40},
        {"token_kind": "root"},
        {"request_id": "req_\x00"},
        {"status": "²"},
        {"since": "9999-12-31T23:59"},
        {"before": "garbage"},
        {"ip": "x" * 5000},
    ],
)
def test_odd_filters_are_refused_beside_their_field_never_a_500(signed_in, project, mixed, odd):
    response = signed_in.get(calls_url(project), odd)
    assert response.status_code in (200, 400)  # 400: the form names the bad field


@pytest.mark.parametrize("request_id", ["\x00", "req_\x00", "a\x00b", "req_" + "a" * 5000])
def test_a_call_page_for_what_cannot_be_a_request_id_is_404(signed_in, project, mixed, request_id):
    # A NUL byte in the path reached PostgreSQL, which refuses it in text: a 500.
    detail = reverse("usage:project_call", args=[project.slug, "x"]).replace("/x/", "/%s/")
    assert signed_in.get(detail % quote(request_id)).status_code == 404


def test_another_projects_calls_and_call_pages_are_404_or_absent(
    signed_in, project, mixed, make_user, make_key
):
    other_owner = make_user(email="other@example.com")
    other = Membership.objects.get(user=other_owner).project
    theirs, _ = make_key(other, name="Theirs")
    usage_write([usage_call(timezone.now(), key=theirs, request_id="req_" + "a" * 24)])
    rows = signed_in.get(calls_url(project, request_id="req_" + "a" * 24)).context["page"].rows
    assert rows == []
    detail = reverse("usage:project_call", args=[project.slug, "req_" + "a" * 24])
    assert signed_in.get(detail).status_code == 404
    assert signed_in.get(reverse("usage:project_calls", args=[other.slug])).status_code == 404


def _log_urls(project, api_key, pat):
    return [
        reverse("usage:project_calls", args=[project.slug]),
        reverse("usage:api_key_usage", args=[project.slug, api_key.pk]),
        reverse("usage:personal_token_usage", args=[pat.pk]),
    ]


def test_a_whole_client_token_pasted_into_the_filter_leaves_the_address_and_the_page(
    signed_in, project, user, api_key
):
    """The box is labelled "Client token"; a person holding one pastes it there. It is not
    searched for, not written back into the page and not left in the address bar (and so
    in the browser's history): the log is opened again without it, saying why."""
    key, _ = api_key
    _, secret = client_token_create(project=project, context={}, api_key=key)
    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    for url in _log_urls(project, key, pat):
        response = signed_in.get(url, {"client_token": f" {secret} ", "status": "401"})
        assert response.status_code == 303, url
        assert response["Location"] == f"{url}?status=401"
        assert secret[12:] not in response.content.decode()
        page = signed_in.get(response["Location"]).content.decode()
        assert "not searched for" in page and secret[12:] not in page


def test_a_whole_client_token_pasted_into_the_filter_with_htmx_is_not_pushed_or_shown(
    htmx, project, user, api_key
):
    key, _ = api_key
    _, secret = client_token_create(project=project, context={}, api_key=key)
    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    for url in _log_urls(project, key, pat):
        response = htmx.get(url, {"client_token": secret})
        assert response["HX-Redirect"] == url, url
        assert secret[12:] not in response.content.decode()
        assert secret[12:] not in response.get("HX-Push-Url", "")
