"""Addresses that only take a form's POST, opened as a page (typed, bookmarked, or
reloaded from the address bar after a form without JavaScript landed there): the
dashboard's own page saying why there is nothing to show, not the browser's "HTTP ERROR
405" over an empty answer. Signing out, opened so, asks first."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.models import Project

# A value each path converter takes (tests/accounts/test_projects.py has the same need).
SAMPLE_VALUES: dict[str, object] = {"int": 1, "ctok": "ctok_" + "A" * 20, "str": "x1"}


def dashboard_urls(slug: str) -> list[str]:
    """Every named address of the dashboard (not of the API), with `slug` for a project's."""
    urls = []

    def walk(patterns, namespace=""):  # type: ignore[no-untyped-def]
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace)
            elif isinstance(p, URLPattern) and p.name:
                name = f"{namespace}:{p.name}" if namespace else p.name
                kwargs = {
                    param: slug if param == "slug" else SAMPLE_VALUES.get(converter, "x1")
                    for converter, param in re.findall(r"<(?:(\w+):)?(\w+)>", str(p.pattern))
                }
                urls.append(reverse(name, kwargs=kwargs))

    walk(get_resolver().url_patterns)
    return [url for url in urls if not url.startswith(("/v1/", "/client/"))]


@pytest.fixture
def form_only_urls(signed_in: Client, user) -> list[str]:  # type: ignore[no-untyped-def]
    slug = Project.objects.for_user(user).get().slug
    return [url for url in dashboard_urls(slug) if signed_in.get(url).status_code == 405]


def test_there_are_form_only_addresses_to_check(form_only_urls):
    assert "/account/logout/" not in form_only_urls  # it asks instead (below)
    assert "/account/security/totp/setup/" in form_only_urls
    assert len(form_only_urls) >= 10


def test_a_form_only_address_opened_as_a_page_says_so(signed_in, form_only_urls):
    for url in form_only_urls:
        answer = signed_in.get(url)
        assert answer.status_code == 405, url
        assert "POST" in answer["Allow"], url
        assert b"<h1>Nothing to open here</h1>" in answer.content, url
        assert b"Nothing was changed" in answer.content, url
        assert b'href="/"' in answer.content, url


def test_htmx_hears_the_same_words(htmx, form_only_urls):
    answer = htmx.get(form_only_urls[0])
    assert answer.status_code == 405
    assert b"<h1>Nothing to open here</h1>" in answer.content


def test_signed_out_the_same_addresses_still_ask_to_sign_in_first(client, form_only_urls):
    for url in form_only_urls[:5]:
        answer = client.get(url)
        assert answer.status_code in (302, 405), url
        if answer.status_code == 302:
            assert answer["Location"].startswith("/account/login/"), url


def test_sign_out_opened_as_a_page_asks_first_and_signs_out_nobody(signed_in):
    answer = signed_in.get("/account/logout/")
    assert answer.status_code == 200
    assert b"<h1>Sign out?</h1>" in answer.content
    assert b'action="/account/logout/"' in answer.content
    assert signed_in.get("/account/security/").status_code == 200  # still signed in
    assert signed_in.head("/account/logout/").status_code == 200  # as GET, without a body
    signed_in.post("/account/logout/")
    assert signed_in.get("/account/security/").status_code == 302


def test_sign_out_opened_when_signed_out_goes_to_sign_in(client):
    answer = client.get("/account/logout/")
    assert answer.status_code == 302
    assert answer["Location"] == "/account/login/"


def test_a_form_sent_to_a_page_that_takes_none_says_so_too(signed_in):
    # The page said "opened as a page" to a POST as well.
    answer = signed_in.post("/account/audit/")
    assert answer.status_code == 405 and "GET" in answer["Allow"]
    assert b"<h1>Nothing to open here</h1>" not in answer.content
    assert b"a page to open, not one that takes a form. Nothing was changed." in answer.content
