"""A key's call log in Chromium: narrowed to the leak's network, read oldest first, paged
forward; a network with host bits set says what to type, beside the field."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD, usage_call
from usage.writer import usage_write


def test_the_leaks_network_oldest_first_then_forward(
    page: Page, live_server: Any, transactional_db: Any
) -> None:
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Leaked", created_by=user)
    now = timezone.now()
    calls = [usage_call(now - timedelta(hours=3), key=key, ip="10.20.0.5")]
    calls += [
        usage_call(now - timedelta(seconds=9 * i + 1), key=key, ip=f"45.83.64.{17 + i % 2}")
        for i in range(60)
    ]
    usage_write(calls)
    sign_in(
        page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/{key.pk}/usage/"
    )

    field = page.get_by_role("textbox", name="IP address or network")
    field.fill("45.83.64.17/24")
    page.get_by_role("button", name="Filter").click()
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Enter the network as 45.83.64.0/24")).to_be_visible()

    field.fill("45.83.64.0/24")
    page.get_by_label("Order").select_option("oldest")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("link", name="Newer →")).to_be_visible()
    rows = page.locator(".log-table tbody tr")
    expect(rows).to_have_count(50)
    expect(rows.first.locator(".ip")).to_have_text("45.83.64.18")  # i = 59, the first
    assert "order=oldest" in page.url and "ip=45.83.64.0%2F24" in page.url

    page.get_by_role("link", name="Newer →").click()
    expect(rows).to_have_count(10)
    expect(page.get_by_role("link", name="← Older")).to_be_visible()
    expect(page.get_by_role("link", name="Oldest", exact=True)).to_be_visible()


def cut_off_choices(page: Page, form: str) -> list[str]:
    """Each select of the form whose chosen option is wider than the select shows: a copy
    holding that option alone, at its natural width, is wider than the select."""
    return list(
        page.evaluate(
            """(form) => Array.from(document.querySelectorAll(form + " select")).filter(s => {
                const copy = s.cloneNode(false);
                copy.append(s.options[s.selectedIndex].cloneNode(true));
                copy.style.cssText = "position:absolute; visibility:hidden; width:auto";
                copy.style.minWidth = "0"; copy.style.maxWidth = "none";
                s.parentElement.append(copy);
                const natural = copy.getBoundingClientRect().width; copy.remove();
                return natural > s.getBoundingClientRect().width + 0.5;
              }).map(s => s.options[s.selectedIndex].text)""",
            form,
        )
    )


def test_the_project_call_logs_filters_show_their_choices_whole_at_1280_and_375_pixels(
    page: Page, live_server: Any, transactional_db: Any
) -> None:
    """At 1280 px the call log's nine filters shared one row, and "Any token type" was cut
    off in its select. Every select shows its choice whole, and the page stays inside the
    screen at 375 px."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Production backend", created_by=user)
    usage_write([usage_call(timezone.now(), key=key)])
    sign_in(page, "kim@example.com")
    for width, height in ((1280, 900), (375, 800)):
        page.set_viewport_size({"width": width, "height": height})
        page.goto(f"/projects/{project.slug}/usage/calls/")
        assert cut_off_choices(page, "#calls-filters") == [], width
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, width
