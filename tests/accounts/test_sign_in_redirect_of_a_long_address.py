"""An htmx request after the session ended is sent to sign in whatever page it names.

HX-Current-URL is a header anyone may send, up to the server's 8 KB a header: its path
goes into the sign-in address's `next`, quoted, where each "%" takes three characters,
and Django refuses a redirect past 16,384 characters (DisallowedRedirect). The request was
answered 400, not with the sign-in page, and each one logged an ERROR with its traceback.
A page whose quoted address would not fit an address (2,048 characters) comes back to the
request's own address instead, and sign-in to where it starts when that does not fit either."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from tests.conftest import PASSWORD


def _next_of(response) -> list[str]:
    location = urlsplit(response["HX-Redirect"])
    assert location.path == reverse("accounts:login")
    return parse_qs(location.query).get("next", [])


def test_an_htmx_request_naming_a_page_of_6000_percent_signs_is_sent_to_sign_in(client, project):
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    response = client.get(
        keys,
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/" + "%" * 6000},
    )
    assert response.status_code == 200
    assert _next_of(response) == [keys]


def test_a_page_named_by_htmx_that_fits_is_where_sign_in_comes_back(client, project):
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    page = f"/projects/{project.slug}/usage/?ip=" + "%25" * 100
    response = client.get(
        keys, headers={"HX-Request": "true", "HX-Current-URL": "http://testserver" + page}
    )
    assert response.status_code == 200
    assert _next_of(response) == [page]


def test_a_request_whose_own_address_is_too_long_too_signs_in_from_the_start(client, project):
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    response = client.get(
        keys + "?q=" + "%25" * 1000,
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/" + "%" * 6000},
    )
    assert response.status_code == 200
    assert _next_of(response) == [keys]


# Signed out, a link whose own query is past what Django redirects to (16,384 characters
# once quoted): Django's login_required raised DisallowedRedirect from inside the view,
# so neither the sign-in page nor the middleware above was reached (a 400 and an ERROR
# with its traceback in the log, found by the sweep of every GET page's query).
LONG_QUERY = "?" + "&".join(f"{name}={'x' * 10_000}" for name in ("q", "page"))


def test_signed_out_a_project_page_asked_with_a_query_too_long_to_keep_signs_in_to_its_path(
    client, project, caplog
):
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    response = client.get(keys + LONG_QUERY)
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == reverse("accounts:login")
    assert parse_qs(location.query)["next"] == [keys]
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


@pytest.mark.parametrize(
    "page",
    # A function view, and Django's class-based one that checks sign-in in its dispatch().
    ["apikeys:personal_token_list", "accounts:password_change"],
)
def test_signed_out_an_account_page_asked_with_a_query_too_long_to_keep_signs_in_to_its_path(
    client, caplog, page
):
    url = reverse(page)
    response = client.get(url + LONG_QUERY, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert _next_of(response) == [url]
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []


def test_signed_out_a_page_asked_with_a_query_that_fits_signs_in_back_to_it_whole(client):
    audit = reverse("accounts:user_audit")
    response = client.get(audit, {"ip": "203.0.113.7", "action": "key.created"})
    location = urlsplit(response["Location"])
    assert parse_qs(location.query)["next"] == [f"{audit}?ip=203.0.113.7&action=key.created"]


SECRET = "reminix_sk_" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123"


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_token_in_the_path_of_a_signed_out_request_is_not_carried_to_sign_in(
    client, project, htmx
):
    """The contract: a token is never written to a later page. Signed out, a page whose
    path held one (a token pasted into the address bar as a project) sent it on in the
    sign-in address's `next`, which the sign-in page writes into its form and its links:
    sign-in now starts plain. (Before it asks, the dashboard's middleware sends the
    browser home, core.htmx.address_without_tokens: a token in the query is taken out
    too, the browser sent to the page without it.)"""
    asked = f"/projects/{SECRET}/"
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver" + asked}
    response = client.get(asked, headers=headers if htmx else {})
    location = response["HX-Redirect"] if htmx else response["Location"]
    assert location == reverse("home")
    location = client.get(location)["Location"]
    assert SECRET[11:] not in location
    assert location == reverse("accounts:login")
    page = client.get(location)
    assert page.status_code == 200 and SECRET[11:] not in page.content.decode()


TOKENS = [
    prefix + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123"
    for prefix in ("reminix_sk_", "reminix_ct_", "reminix_pat_")
]


@pytest.mark.parametrize("token", TOKENS, ids=["sk", "ct", "pat"])
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize(
    "page", ["accounts:project_settings", "accounts:account_sessions", "accounts:password_change"]
)
def test_a_token_in_the_query_of_a_signed_out_request_is_not_carried_to_sign_in(
    client, project, htmx, token, page
):
    """A page that did not send the browser to itself without a token (not a filter
    page) sent one in an unrelated parameter on in `next`: sign-in comes back to the page
    without it, with the rest of its query. Every page now sends the browser to itself
    without it first (core.htmx.address_without_tokens), and sign-in is asked there."""
    url = reverse(page, args=[project.slug] if "project" in page else [])
    spaced = token[:14] + "%20" + token[14:]
    for query in (f"?x={token}&keep=1", f"?{token}&keep=1", f"?keep=1&x={spaced}"):
        headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver" + url + query}
        response = client.get(url + query, headers=headers if htmx else {})
        location = response["HX-Redirect"] if htmx else response["Location"]
        assert location == f"{url}?keep=1", query
        location = client.get(location)["Location"]
        assert token[12:] not in location, query
        assert parse_qs(urlsplit(location).query)["next"] == [f"{url}?keep=1"], query
        sign_in = client.get(location)
        assert sign_in.status_code == 200 and token[12:] not in sign_in.content.decode()


@pytest.mark.parametrize("token", TOKENS, ids=["sk", "ct", "pat"])
def test_a_hand_made_sign_in_link_whose_next_holds_a_token_neither_shows_nor_follows_it(
    client, user, token
):
    """The sign-in page writes `next` into its form, its passkey button and its sign-up
    link, and goes there once signed in: a token in it (in its path or its query) is left
    out of both."""
    sessions = reverse("accounts:account_sessions")
    login = reverse("accounts:login")
    for next_url, back in (
        (f"{sessions}?x={token}&keep=1", f"{sessions}?keep=1"),
        (f"/projects/{token}/", None),
    ):
        # Opened again with `next` without it (core.htmx.address_without_tokens).
        page = client.get(login, {"next": next_url}, follow=True)
        assert page.status_code == 200 and token[12:] not in page.content.decode()
        assert all(token[12:] not in went for went, _ in page.redirect_chain)
        signup = client.get(reverse("accounts:signup"), {"next": next_url}, follow=True)
        assert signup.status_code == 200 and token[12:] not in signup.content.decode()
        signed_in = client.post(
            login, {"username": user.email, "password": PASSWORD, "next": next_url}
        )
        assert signed_in.status_code == 302, signed_in.content.decode()[:3000]
        assert token[12:] not in signed_in["Location"]
        if back:
            assert signed_in["Location"] == back
        client.logout()


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
def test_a_token_in_the_query_of_a_signed_out_form_is_not_carried_to_sign_in(client, project, htmx):
    """A form's address with a token in its query (?token=…, as "Which key is this?" is
    named), sent signed out: a page's GET sends the browser to itself without it, but a
    POST is not a page, and its sign-in's `next` held the token whole (found by the POST
    sweep). Sign-in comes back to the form's path instead."""
    path = reverse("alerts:token_lookup", args=[project.slug])
    asked = f"{path}?token={SECRET}"
    headers = {"HX-Request": "true", "HX-Current-URL": "http://testserver" + asked}
    response = client.post(asked, {"token": "x"}, headers=headers if htmx else {})
    location = response["HX-Redirect"] if htmx else response["Location"]
    assert SECRET[11:] not in location
    assert parse_qs(urlsplit(location).query)["next"] == [path]
