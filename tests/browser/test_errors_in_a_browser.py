"""What a person sees when an htmx request fails: an error answer or no answer at all
does not swap anything in, so the page must say so, and a session that ended meanwhile
leads to the sign-in page, not a sign-in form inside a dialog."""

from __future__ import annotations

import re

from django.template.loader import render_to_string
from playwright.sync_api import Page, Route, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD


def keys_page_with_one_key(page: Page) -> ApiKey:
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.get(memberships__user=user)
    key, _ = api_key_create(project=project, name="Production", created_by=user)
    sign_in(page, "kim@example.com")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="API Keys").click()
    return key


def test_a_busy_server_is_said_in_the_dialog_and_the_retry_goes_through(
    page: Page, transactional_db
):
    key = keys_page_with_one_key(page)
    page.get_by_role("link", name="Revoke Production").click()
    busy = render_to_string("503.html")

    def answer_busy(route: Route) -> None:
        if route.request.method == "POST":
            route.fulfill(
                status=503, body=busy, content_type="text/html", headers={"Retry-After": "5"}
            )
        else:
            route.continue_()

    page.route("**/revoke/", answer_busy)
    page.get_by_role("button", name="Revoke “Production”").click()

    dialog = page.get_by_role("dialog")
    alert = dialog.get_by_role("alert")
    expect(alert).to_contain_text("Busy for a moment")
    expect(alert).to_contain_text("Try again in a few seconds")
    key.refresh_from_db()
    assert key.revoked_at is None

    page.unroute("**/revoke/")
    page.get_by_role("button", name="Revoke “Production”").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_a_request_that_never_reached_the_server_is_said(page: Page, transactional_db):
    keys_page_with_one_key(page)
    page.route("**/api-keys/new/", lambda route: route.abort("internetdisconnected"))
    page.get_by_role("link", name="Create API key").click()
    alert = page.locator("main").get_by_role("alert")
    expect(alert).to_contain_text("could not be reached")
    alert.get_by_role("button", name="Dismiss").click()
    expect(alert).to_have_count(0)


def test_a_session_that_ended_meanwhile_leads_to_the_sign_in_page(page: Page, transactional_db):
    keys_page_with_one_key(page)
    keys_address = page.url
    page.context.clear_cookies()  # signed out in another tab, or the session expired
    page.get_by_role("link", name="Create API key").click()
    expect(page).to_have_url(re.compile(r"/account/login/\?next="))
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert keys_address != page.url
