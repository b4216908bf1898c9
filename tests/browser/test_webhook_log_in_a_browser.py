"""The webhook delivery log reloads itself while something is queued: it keeps a keyboard
user's focus, stops once the endpoint is gone, and never swaps another page into itself."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Project, User
from accounts.services import user_sign_up
from tests.browser.signing_in import sign_in
from tests.browser.test_focus_after_updates import focus_of
from tests.conftest import PASSWORD
from webhooks.models import WebhookDelivery, WebhookEndpoint
from webhooks.services import webhook_create, webhook_send_test

# The log reloads itself every second here, not the product's 3: the tests wait on polls.
REFRESH_SECONDS = 1


@pytest.fixture(autouse=True)
def _quick_refresh(settings) -> None:  # type: ignore[no-untyped-def]
    settings.WEBHOOK_LOG_REFRESH_SECONDS = REFRESH_SECONDS


def _an_owners_endpoint() -> tuple[User, Project, WebhookEndpoint]:
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/alerts",
        format="generic",
        min_severity="high",
        created_by=user,
    )
    return user, project, endpoint


def _open_the_log(page: Page, project: Project, endpoint: WebhookEndpoint) -> None:
    """Signed in, on the endpoint's page, its log reloading itself."""
    sign_in(
        page, "kim@example.com", at=f"/projects/{project.slug}/settings/webhooks/{endpoint.pk}/"
    )
    expect(page.locator("#deliveries[data-quiet-refresh]")).to_have_count(1)


def _endpoint_with_a_failed_and_a_queued_delivery() -> tuple[Project, WebhookEndpoint]:
    user, project, endpoint = _an_owners_endpoint()
    failed = webhook_send_test(endpoint=endpoint, by=user)
    assert failed is not None
    WebhookDelivery.objects.filter(pk=failed.pk).update(
        status=WebhookDelivery.Status.GAVE_UP, attempts=6, last_status_code=500
    )
    webhook_send_test(endpoint=endpoint, by=user)  # queued: the log polls
    return project, endpoint


def test_a_log_that_reloads_itself_takes_neither_focus_nor_the_scroll(
    page: Page, live_server, transactional_db
):
    """Nobody asked for the log's reloads: they must not move focus or scroll to the log,
    and they speak only to say how the queued delivery went."""
    user, project, endpoint = _an_owners_endpoint()
    delivery = webhook_send_test(endpoint=endpoint, by=user)
    assert delivery is not None
    page.set_viewport_size({"width": 1280, "height": 420})  # the log starts below the fold
    _open_the_log(page, project, endpoint)
    expect(page.locator("#deliveries")).to_contain_text("queued")

    # As the scheduler's run would leave it.
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=WebhookDelivery.Status.SUCCEEDED, attempts=1, last_status_code=204
    )
    expect(page.locator("#deliveries")).to_contain_text("delivered", timeout=10_000)
    expect(page.locator("#deliveries[data-quiet-refresh]")).to_have_count(0)
    page.wait_for_timeout(300)  # past htmx's settle
    assert focus_of(page) == "BODY"
    assert page.evaluate("() => window.scrollY") == 0
    # It speaks once, to say how the queued delivery went.
    expect(page.locator("#announcer")).to_have_text(f"{delivery.event_id}: delivered, HTTP 204")


def test_a_keyboard_user_on_retry_now_keeps_focus_while_the_log_reloads_itself(
    page: Page, live_server, transactional_db
):
    project, endpoint = _endpoint_with_a_failed_and_a_queued_delivery()
    _open_the_log(page, project, endpoint)
    retry = page.locator("#deliveries button", has_text="Retry now")
    retry.focus()
    assert focus_of(page) == "BUTTON"
    # The next reload (every REFRESH_SECONDS) replaces the section, and the button with it.
    with page.expect_response(lambda r: f"/webhooks/{endpoint.pk}/" in r.url):
        pass
    page.wait_for_timeout(500)
    assert focus_of(page) == "BUTTON"
    expect(page.locator("#deliveries[data-quiet-refresh]")).to_have_count(1)  # still polling


def test_the_log_stops_polling_once_the_endpoint_is_gone(page: Page, live_server, transactional_db):
    project, endpoint = _endpoint_with_a_failed_and_a_queued_delivery()
    _open_the_log(page, project, endpoint)
    path = f"/webhooks/{endpoint.pk}/"
    endpoint.delete()  # as another owner in another tab would
    polls: list[int] = []
    page.on("response", lambda r: polls.append(r.status) if path in r.url else None)
    with page.expect_response(lambda r: path in r.url):  # the next poll
        pass
    expect(page.locator("#deliveries")).to_contain_text("This log stopped updating")
    page.wait_for_timeout((REFRESH_SECONDS + 1) * 1000)  # past the time of the poll after it
    assert len(polls) == 1, polls
    expect(page.locator("#deliveries")).to_contain_text("queued")  # what it showed stays


def test_a_poll_after_signing_out_does_not_put_the_sign_in_page_inside_settings(
    page: Page, live_server, transactional_db
):
    project, endpoint = _endpoint_with_a_failed_and_a_queued_delivery()
    _open_the_log(page, project, endpoint)
    page.context.clear_cookies()  # the session ended (signed out in another tab, expired)
    with page.expect_response(lambda r: f"/webhooks/{endpoint.pk}/" in r.url):  # one more poll
        pass
    expect(page.locator("#deliveries")).to_contain_text("This log stopped updating")
    # Either the whole page goes to sign in, or the log stays as it was: never both pages.
    assert page.locator("h1").count() == 1, page.locator("h1").all_text_contents()
