"""An htmx request after the session ended is sent to sign in whatever page it names.

HX-Current-URL is a header anyone may send, up to the server's 8 KB a header: its path
goes into the sign-in address's `next`, quoted, where each "%" takes three characters,
and Django refuses a redirect past 16,384 characters (DisallowedRedirect). The request was
answered 400, not with the sign-in page, and each one logged an ERROR with its traceback.
A page whose quoted address would not fit an address (2,048 characters) comes back to the
request's own address instead, and sign-in to where it starts when that does not fit either."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from django.urls import reverse


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
