"""Every filter form of the dashboard ends in the same button: a primary one, as the
usage, calls, alerts, client tokens and audit pages had it. The API keys page's Show and
the members page's Search were plain, so the one button that runs a page's filter
looked like a lesser action there than on the pages beside it."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse


def filter_forms(html: str) -> list[str]:
    """The page's GET forms: its filters and searches."""
    return [
        form
        for form in re.findall(r"<form\b[^>]*>.*?</form>", html, re.S)
        if re.search(r'<form\b[^>]*\bmethod="get"', form)
    ]


PAGES = {
    "api keys": lambda slug, key: reverse("apikeys:api_key_list", args=[slug]),
    "a key's usage": lambda slug, key: reverse("usage:api_key_usage", args=[slug, key]),
    "usage": lambda slug, key: reverse("usage:project_usage", args=[slug]),
    "calls": lambda slug, key: reverse("usage:project_calls", args=[slug]),
    "alerts": lambda slug, key: reverse("alerts:flag_list", args=[slug]),
    "client tokens": lambda slug, key: reverse("apikeys:client_token_list", args=[slug]),
    "members": lambda slug, key: reverse("accounts:project_members", args=[slug]),
    "project audit": lambda slug, key: reverse("accounts:project_audit", args=[slug]),
    "account audit": lambda slug, key: reverse("accounts:user_audit"),
}


@pytest.mark.parametrize("page", PAGES)
def test_each_filter_form_submits_with_the_primary_button(signed_in, project, api_key, page):
    key, _ = api_key
    response = signed_in.get(PAGES[page](project.slug, key.pk))
    assert response.status_code == 200
    forms = filter_forms(response.content.decode())
    assert forms, f"no filter form on the {page} page"
    for form in forms:
        buttons = re.findall(r'<button type="submit" class="([^"]*)"', form)
        assert buttons, form
        assert all("button-primary" in classes.split() for classes in buttons), (page, buttons)
