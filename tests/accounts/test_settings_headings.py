"""Each page under Settings is headed by its own name, as GitHub's settings pages are
("General", "Collaborators", "Webhooks"), above the Settings navigation that leads to the
others. All five were headed "Settings", so the heading, the first thing a screen
reader's list of headings or a glance gives, never said which of them was open."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

PAGES = {
    "General": "accounts:project_settings",
    "Members": "accounts:project_members",
    "Client tokens": "apikeys:client_token_list",
    "Webhooks": "webhooks:webhook_list",
    "Audit log": "accounts:project_audit",
}


def text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", "", html).split())


@pytest.mark.parametrize("name", PAGES)
def test_each_settings_page_is_headed_by_its_name_above_the_settings_navigation(
    signed_in, project, name
):
    html = signed_in.get(reverse(PAGES[name], args=[project.slug])).content.decode()
    headings = re.findall(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    assert [text(h) for h in headings] == [name]
    nav = re.search(r'<nav class="subnav" aria-label="Settings">.*?</nav>', html, re.S)
    assert nav is not None
    current = re.findall(r'<a [^>]*aria-current="page"[^>]*>(.*?)</a>', nav.group(), re.S)
    assert [text(c) for c in current] == [name]
    # No section under it repeats the page's name as its own heading.
    assert name not in [text(h) for h in re.findall(r"<h[23][^>]*>(.*?)</h[23]>", html, re.S)]
