"""Every filter form of the dashboard ends in the same button: a primary one, as the
usage, calls, alerts, client tokens and audit pages had it. The API keys page's Show and
the members page's Search were plain, so the one button that runs a page's filter
looked like a lesser action there than on the pages beside it.

And every one is a search landmark with a name, its button saying what it does in one
word, the same word on every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from accounts.models import Project
from apikeys.models import ApiKey


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


def button_word(form: str) -> str:
    """Search where the form is a text search (its free text, q, looks through names,
    addresses, notes: the members, the API keys), Filter where it narrows a list by fields
    (an actor's address among the audit log's is one of those): as GitHub's and Stripe's
    lists do."""
    return "Search" if re.search(r'<input[^>]*type="search"[^>]*name="q"', form) else "Filter"


def landmark_and_word(form: str) -> list[str]:
    """What is wrong with one filter form: not a named search landmark, or its button."""
    tag = form[: form.index(">") + 1]
    wrong = []
    if 'role="search"' not in tag or not re.search(r'aria-label="[^"]+"', tag):
        wrong.append("not a named search landmark")
    buttons = re.findall(r'<button type="submit"[^>]*>(.*?)</button>', form, re.S)
    if buttons != [button_word(form)]:
        wrong.append(f"its button says {buttons}, not [{button_word(form)!r}]")
    return wrong


@pytest.mark.parametrize("page", PAGES)
def test_each_filter_form_is_a_named_search_and_says_filter_or_search(
    signed_in: Client, project: Project, api_key: tuple[ApiKey, str], page: str
) -> None:
    """The buttons said Show, Filter or Search for the same act, and the client tokens' and
    the alerts' filters were plain forms, missing from a screen reader's list of landmarks
    where every other filter is."""
    key, _ = api_key
    forms = filter_forms(signed_in.get(PAGES[page](project.slug, key.pk)).content.decode())
    assert [landmark_and_word(form) for form in forms] == [[] for _ in forms], page


def test_every_filter_form_in_the_templates_is_a_named_search_and_says_filter_or_search() -> None:
    """The same for each GET form in the templates, those of pages not listed above too."""
    wrong = {}
    for template in sorted(Path(settings.BASE_DIR, "templates").rglob("*.html")):
        text = template.read_text()
        for form in filter_forms(text):
            line = text.count("\n", 0, text.index(form)) + 1
            if problems := landmark_and_word(form):
                wrong[f"{template.relative_to(settings.BASE_DIR)}:{line}"] = problems
    assert wrong == {}
