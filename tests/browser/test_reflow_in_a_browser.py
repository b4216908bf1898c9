"""Reflow (WCAG 1.4.10): at 320 CSS pixels wide, what a page holds is all there without
scrolling sideways, nothing cut off at the edge."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page

from accounts.models import Project
from accounts.services import user_sign_up
from alerts.detection import detect
from apikeys.services import api_key_create
from tests.browser.test_api_keys_in_a_browser import sign_in
from tests.conftest import PASSWORD, usage_call
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
    sign_in(page, "kim@example.com")
    page.goto(f"/projects/{project.slug}/alerts/")
    assert cut_off_tabs(page) == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
