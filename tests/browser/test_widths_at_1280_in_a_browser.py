"""What was cut off or scrolled sideways at 1280 px, measured: the call log's address
placeholder, the key list's "Last used" ("7 minutes / ago"), and the Usage page's
address table and the call log, which scrolled some 20 px inside their cards; and a
key's call log and a personal access token's, with their user agent and path filters.
Each page is also looked at 375 px wide, where nothing may leave the screen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import (
    api_key_create,
    client_token_create,
    personal_token_create,
)
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD, keys_at_their_widest, usage_call
from usage.writer import usage_write

SIZES = ((1280, 900), (375, 800))
LONG_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126"


def cut_placeholders(page: Page, form: str) -> list[str]:
    """Each text box of the form whose placeholder is wider than the box shows text."""
    return list(
        page.evaluate(
            """(form) => { const ctx = document.createElement("canvas").getContext("2d");
                return Array.from(document.querySelectorAll(form + " input[placeholder]"))
                  .filter(i => { const s = getComputedStyle(i);
                    if (i.getClientRects().length === 0) return false;  // not on show
                    ctx.font = s.font;
                    const room = i.clientWidth - parseFloat(s.paddingLeft)
                      - parseFloat(s.paddingRight);
                    return ctx.measureText(i.placeholder).width > room + 0.5; })
                  .map(i => i.name + ": " + i.placeholder); }""",
            form,
        )
    )


def cut_choices(page: Page, form: str) -> list[str]:
    """Each drop-down of the form whose chosen option is wider than the box shows text
    (its padding and the arrow's room taken off)."""
    return list(
        page.evaluate(
            """(form) => { const ctx = document.createElement("canvas").getContext("2d");
                return Array.from(document.querySelectorAll(form + " select"))
                  .filter(s => { const st = getComputedStyle(s);
                    if (s.getClientRects().length === 0) return false;
                    ctx.font = st.font;
                    const room = s.clientWidth - parseFloat(st.paddingLeft)
                      - parseFloat(st.paddingRight) - 20;  // the arrow
                    const shown = s.options[s.selectedIndex]?.text ?? "";
                    return ctx.measureText(shown).width > room + 0.5; })
                  .map(s => s.name + ": " + s.options[s.selectedIndex]?.text); }""",
            form,
        )
    )


def scrolled_sideways(page: Page) -> list[str]:
    """Each table box on show (not in a closed <details>, such as the chart's figures, a
    table of the range's buckets that may scroll) that scrolls sideways, and by how much."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll("main .table-wrap"))
                .filter(w => w.checkVisibility() && w.scrollWidth > w.clientWidth + 1)
                .map(w => w.querySelector("table").className + " by "
                  + (w.scrollWidth - w.clientWidth) + " px")"""
        )
    )


def codes_broken_inside_a_word(page: Page) -> list[str]:
    """Each error code on show that goes onto its next line anywhere but after an
    underscore ("expired_api_ke" / "y"), read character by character from where each
    one stands."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll("main .error-code"))
                .filter(c => c.getClientRects().length > 0)
                .filter(c => { const walker = document.createTreeWalker(c, NodeFilter.SHOW_TEXT);
                  let before = null, top = null;
                  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
                    for (let i = 0; i < node.length; i++) {
                      const range = document.createRange();
                      range.setStart(node, i); range.setEnd(node, i + 1);
                      const rect = range.getBoundingClientRect();
                      if (top !== null && rect.top > top + 1 && before !== "_") return true;
                      top = rect.top; before = node.data[i];
                    } }
                  return false; })
                .map(c => c.textContent)"""
        )
    )


def outside_the_form(page: Page, form: str) -> list[str]:
    """Each field on show of the form that reaches past the form's edges."""
    return list(
        page.evaluate(
            """(form) => { const f = document.querySelector(form).getBoundingClientRect();
                return Array.from(document.querySelectorAll(form + " input, " + form + " select"))
                  .filter(i => i.getClientRects().length > 0)
                  .filter(i => { const r = i.getBoundingClientRect();
                    return r.left < f.left - 0.5 || r.right > f.right + 0.5; })
                  .map(i => i.name); }""",
            form,
        )
    )


def off_screen(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def world() -> tuple[Project, ApiKey]:
    """A project whose log holds the calls that make its tables widest: IPv6 addresses,
    a long user agent, a client token's calls, a long agent's path, a 4xx with its code."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Production backend", created_by=user)
    minted, _ = client_token_create(project=project, api_key=key, context={})
    now = timezone.now()
    agent = "customer-support-escalations-bot"
    calls = [
        usage_call(
            now - timedelta(minutes=i),
            key=key,
            ip=f"2001:db8:ffff:ffff:ffff:ffff:ffff:{i + 1:04x}",
            user_agent=LONG_UA,
            agent=agent,
            status=403 if i % 3 else 200,
            error_code="insufficient_permissions" if i % 3 else "",
        )
        for i in range(12)
    ]
    calls += [usage_call(now - timedelta(seconds=30), client_token=minted, ip="198.51.100.23")]
    pat, _ = personal_token_create(user=user, name="Deploys from CI", expires_at=None)
    calls += [
        usage_call(
            now - timedelta(minutes=i, seconds=10),
            pat=pat,
            project=project,
            ip=f"2001:db8:ffff:ffff:ffff:ffff:ffff:{i + 0x100:04x}",
            user_agent=LONG_UA,
            agent=agent,
            status=403 if i % 3 else 200,
            error_code="insufficient_permissions" if i % 3 else "",
        )
        for i in range(12)
    ]
    usage_write(calls)
    return project, key


# Each call log and the Usage page, with its filter form: the key's log and the personal
# access token's with a user agent asked, so that their text filters' note and the day
# they filled in are on show too.
PAGES = {
    "call log": ("usage:project_calls", "project", "#calls-filters"),
    "usage page": ("usage:project_usage", "project", "#overview-filters"),
    "key's call log": ("usage:api_key_usage", "key", "#usage-filters"),
    "personal token's call log": ("usage:personal_token_usage", "pat", "#usage-filters"),
}


def page_url(url_name: str, of: str, project: Project, key: ApiKey) -> str:
    if of == "pat":
        pat = PersonalAccessToken.objects.get(user=key.created_by)
        return reverse(url_name, args=[pat.pk]) + "?user_agent=Mozilla"
    if of == "key":
        return reverse(url_name, args=[project.slug, key.pk]) + "?user_agent=Mozilla"
    return reverse(url_name, args=[project.slug])


@pytest.mark.parametrize("name", PAGES)
def test_the_pages_filters_and_tables_keep_inside_their_cards(
    page: Page, live_server: Any, transactional_db: Any, name: str
) -> None:
    project, key = world()
    url_name, of, form = PAGES[name]
    url = page_url(url_name, of, project, key)
    sign_in(page, "kim@example.com")
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(url)
        if of != "project":  # the text filters are on show, and what they found
            assert page.locator(f"{form} input[name=user_agent]").is_visible(), width
            assert page.locator(f"{form} input[name=path]").is_visible(), width
            assert page.locator("main .log-table tbody tr").count() > 0, width
        assert cut_placeholders(page, form) == [], width
        assert cut_choices(page, form) == [], width
        assert outside_the_form(page, form) == [], width
        assert scrolled_sideways(page) == [], width
        assert codes_broken_inside_a_word(page) == [], width
        assert off_screen(page) <= 0, width


def test_the_key_lists_last_used_keeps_to_one_line(
    page: Page, live_server: Any, transactional_db: Any
) -> None:
    """Beside a rolled key, a suspended one and a long name, the rows that make the
    table widest (as in tests/browser/test_reflow_in_a_browser.py)."""
    project, key = world()
    user = key.created_by
    keys_at_their_widest(project, user, rolled=key)
    ApiKey.objects.filter(project=project).update(
        last_used_at=timezone.now() - timedelta(minutes=7), last_used_ip="198.51.100.23"
    )
    sign_in(page, "kim@example.com")
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/projects/{project.slug}/settings/api-keys/")
        broken = page.evaluate(
            """() => Array.from(document.querySelectorAll("main td[data-label='Last used'] time"))
                .filter(t => t.getClientRects().length > 1).map(t => t.textContent.trim())"""
        )
        assert broken == [], width
        assert off_screen(page) <= 0, width
