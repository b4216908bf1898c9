"""A form that makes a secret cannot be clicked again while it is on its way: htmx's by
hx-disabled-elt, the plain ones by app.js (data-send-once). The server makes the secret
once whatever the browser does (tests/core/test_secret_forms_sent_twice.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, Request, Route, expect

from accounts.models import Project
from accounts.services import user_sign_up
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_create


def held_posts(page: Page, pattern: str) -> list[Route]:
    """The POSTs to `pattern`, held until the test lets each go; other requests pass."""
    held: list[Route] = []

    def hold(route: Route) -> None:
        if route.request.method == "POST":
            held.append(route)
        else:
            route.continue_()

    page.route(pattern, hold)
    return held


def sent(page: Page, held: list[Route]) -> int:
    """How many were sent, once the first has reached the route (Playwright hands a route
    over only while the test waits on the page)."""
    for _ in range(100):
        if held:
            break
        page.wait_for_timeout(50)
    page.wait_for_timeout(200)  # time for a second send, were there one
    return len(held)


def test_create_key_is_disabled_while_its_form_is_on_its_way(
    page: Page, live_server, transactional_db
):
    user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    sign_in(page, "kim@example.com")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="API Keys").click()
    page.get_by_role("link", name="Create API key").click()
    page.get_by_label("Name").fill("Production")
    held = held_posts(page, "**/api-keys/new/")
    button = page.get_by_role("button", name="Create key")
    button.click()
    expect(button).to_be_disabled()
    page.get_by_label("Name").press("Enter")  # sends nothing either
    assert sent(page, held) == 1
    held[0].continue_()
    expect(page.get_by_label("Your new API key", exact=True)).to_be_visible()
    assert len(held) == 1


@pytest.fixture
def on_a_webhooks_page(page: Page, live_server, transactional_db) -> None:
    """Kim signed in, on the page of her project's webhook endpoint: its Roll secret form
    (data-send-once) makes a secret."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.get(memberships__user=user)
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/in",
        format=WebhookEndpoint.Format.GENERIC,
        min_severity="low",
        created_by=user,
    )
    sign_in(
        page, "kim@example.com", at=f"/projects/{project.slug}/settings/webhooks/{endpoint.pk}/"
    )


@pytest.mark.usefixtures("on_a_webhooks_page")
def test_roll_secret_is_disabled_once_confirmed_and_sent(page: Page):
    rolls: list[str] = []

    def count(request: Request) -> None:
        if request.url.endswith("/roll-secret/"):
            rolls.append(request.url)

    page.context.on("request", count)
    form = page.locator("form[data-send-once]")
    # Its answer opens in another tab, so that this page, the one a person clicks again,
    # stays to be looked at (a page on its way to the next one cannot be read).
    form.evaluate("form => { form.target = 'answer' }")
    roll = form.get_by_role("button", name="Roll secret")
    with page.context.expect_page() as answer:
        roll.click()
        page.get_by_role("dialog").get_by_role("button", name="Roll secret").click()
    expect(answer.value.get_by_text("whsec_", exact=False).first).to_be_visible()
    expect(roll).to_be_disabled()
    roll.click(force=True)  # a second click: nothing is sent, nothing is asked
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert len(rolls) == 1


@pytest.mark.usefixtures("on_a_webhooks_page")
def test_roll_secret_keeps_focus_and_works_again_once_its_send_is_stopped(page: Page):
    """Its buttons were disabled once it was sent: focus fell to the page's body, and a
    send stopped by the person (Esc, the browser's Stop) left them disabled until a reload.
    The server holds the send while the browser stops it as its Stop button does."""
    held = held_posts(page, "**/roll-secret/")
    roll = page.locator("form[data-send-once]").get_by_role("button", name="Roll secret")
    roll.click()
    page.get_by_role("dialog").get_by_role("button", name="Roll secret").click(no_wait_after=True)
    assert sent(page, held) == 1
    # Playwright's locators wait for the page's navigation to end: the button is read
    # once it is stopped (test_roll_secret_is_disabled_once_confirmed_and_sent reads it on
    # its way). Focus dropped to the body as it was disabled, never to come back.
    browser = page.context.new_cdp_session(page)
    browser.send("Page.stopLoading")
    held[0].abort()

    expect(roll).to_be_enabled()
    expect(roll).to_be_focused()
    roll.click()
    page.get_by_role("dialog").get_by_role("button", name="Roll secret").click(no_wait_after=True)
    assert sent(page, held) == 2
    held[1].continue_()
    expect(page.get_by_text("whsec_", exact=False).first).to_be_visible()
