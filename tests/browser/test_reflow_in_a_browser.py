"""Reflow (WCAG 1.4.10): at 320 CSS pixels wide, what a page holds is all there without
scrolling sideways, nothing cut off at the edge."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page
from pytest_django.live_server_helper import LiveServer

from accounts.models import Project
from accounts.services import user_sign_up
from alerts.detection import detect
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD, keys_at_their_widest, usage_call
from usage.writer import usage_write


def cut_off_tabs(page: Page) -> list[str]:
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll(".tabs a"))
                .filter(a => { const r = a.getBoundingClientRect();
                  const strip = a.parentElement.getBoundingClientRect();
                  return r.left < strip.left - 1 || r.right > strip.right + 1; })
                .map(a => a.textContent.trim())"""
        )
    )


def test_at_320_pixels_every_project_tab_is_shown_whole(page: Page, live_server, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Leaked", created_by=user)
    key.revoke(by=None)
    now = timezone.now()
    usage_write([usage_call(now, key=key, status=401, error_code="expired_api_key")])
    detect(now=now + timedelta(minutes=1))  # an alert: the Alerts tab carries its count
    page.set_viewport_size({"width": 320, "height": 640})
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/alerts/")
    assert cut_off_tabs(page) == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0


def badges_broken_over_lines(page: Page) -> list[str]:
    """A badge is one phrase on one line: taller than a one-line badge, it broke mid-phrase."""
    return list(
        page.evaluate(
            """() => { const probe = document.createElement("span");
                probe.className = "badge"; probe.textContent = "x";
                document.querySelector("main").append(probe);
                const line = probe.getBoundingClientRect().height; probe.remove();
                return Array.from(document.querySelectorAll("main .badge"))
                  .filter(b => b.getBoundingClientRect().height > line + 1)
                  .map(b => b.textContent.trim()); }"""
        )
    )


def dates_broken_over_lines(page: Page) -> list[str]:
    """The key list's Created and Expires dates: one line box each, never "6 Dec / 2026"."""
    return list(
        page.evaluate(
            """() => Array.from(document.querySelectorAll(
                  "main td[data-label='Created'] time, main td.key-expiry time"))
                .filter(t => t.getClientRects().length > 1)
                .map(t => t.textContent.trim())"""
        )
    )


def test_the_key_lists_badges_keep_to_one_line_at_1280_and_375_pixels(
    page: Page, live_server: LiveServer, transactional_db: None
) -> None:
    """At 1280 px a key expiring in its last days said "expires in / 2 days, / 23 hours" in
    a badge broken word by word beside a rolled key and a suspended one (the rows that make
    the table widest), and the Created date read "6 Dec / 2026". The badges and the dates
    stay whole, and the table keeps inside its card (1280) and the page inside the screen
    (375)."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    keys_at_their_widest(project, user)
    sign_in(page, "kim@example.com")
    for width, height in ((1280, 900), (375, 800)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/projects/{project.slug}/settings/api-keys/")
        expiring = page.locator("td.key-expiry .badge")
        assert (expiring.text_content() or "").replace("\xa0", " ") == "in 2 days"
        assert badges_broken_over_lines(page) == [], width
        assert dates_broken_over_lines(page) == [], width
        wider = page.evaluate(
            """() => Array.from(document.querySelectorAll("main .card"))
                .filter(c => c.scrollWidth > c.clientWidth + 1).length"""
        )
        assert wider == 0, width
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, width
