"""A revoked key is tried; the alert appears, links to the attempt, and is acknowledged."""

import json
import urllib.error
import urllib.request
from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from alerts.detection import detect
from apikeys.services import api_key_create, api_key_revoke
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD


def try_key(base_url: str, token: str) -> str:
    request = urllib.request.Request(
        f"{base_url}/v1/agents/my-agent/invoke",
        data=json.dumps({"prompt": "still here?"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 401
        return error.headers["X-Request-Id"]
    raise AssertionError("a revoked key was accepted")


def test_a_revoked_key_tried_raises_an_alert_a_member_follows_and_acknowledges(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="sec@example.com", password=PASSWORD, name="Sec", verified=True)
    project = Project.objects.for_user(user).get()
    key, token = api_key_create(project=project, name="Leaked", created_by=user)
    api_key_revoke(api_key=key, by=user)
    attempt = try_key(live_server.url, token)
    detect(now=timezone.now() + timedelta(minutes=1))

    sign_in(page, "sec@example.com")
    nav = page.get_by_role("navigation", name="Project")
    expect(nav.get_by_role("link", name="Alerts")).to_contain_text("1")
    nav.get_by_role("link", name="Alerts").click()
    expect(page.get_by_text("no longer works but is still being tried")).to_be_visible()

    page.get_by_role("link", name="See the calls").click()
    expect(page.locator("tr", has_text=attempt)).to_contain_text("expired_api_key")

    page.go_back()
    page.get_by_role("button", name="Acknowledge: Revoked or expired token still in use").click()
    expect(page.get_by_text("Acknowledged in the last 30 days")).to_be_visible()
    expect(page.get_by_text("by sec@example.com")).to_be_visible()
    # The count in the navigation went with it, without a reload.
    expect(nav.get_by_role("link", name="Alerts")).to_have_text("Alerts")


def test_an_owner_pastes_a_found_token_and_is_led_to_its_key(
    page: Page, live_server, transactional_db
):
    """Issue 11, point 7: which key is this? The field never shows the token again."""
    user = user_sign_up(email="own@example.com", password=PASSWORD, name="Own", verified=True)
    project = Project.objects.for_user(user).get()
    key, token = api_key_create(project=project, name="Found in a ticket", created_by=user)
    sign_in(page, "own@example.com", at=f"/projects/{project.slug}/alerts/")

    page.get_by_role("button", name="Look it up").click()
    # Beside the field, and said once by the live region (which repeats its text).
    expect(page.locator(".errorlist").get_by_text("Paste the token you found.")).to_be_visible()
    expect(page.locator("#announcer")).to_have_text(
        "There is a problem: Paste the token you found."
    )
    page.get_by_label("Token", exact=True).fill(token)
    page.get_by_role("button", name="Look it up").click()
    result = page.locator(".lookup-result")
    expect(result).to_contain_text("the API key “Found in a ticket”")
    expect(result).to_contain_text("still works")
    expect(page.get_by_label("Token", exact=True)).to_have_value("")
    assert token not in page.content()
    result.get_by_role("link", name="Its usage").click()
    expect(page.get_by_role("heading", name="Usage of “Found in a ticket”")).to_be_visible()


def test_a_revoked_keys_alerts_are_acknowledged_in_one_click(
    page: Page, live_server, transactional_db
):
    """The leak a review walked through left a revoked key's alerts open, acknowledged one
    click at a time; its cards offer to acknowledge them all, and the list and the count in
    the navigation follow without a reload."""
    from alerts.models import Flag

    user = user_sign_up(email="sec@example.com", password=PASSWORD, name="Sec", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Leaked", created_by=user)
    now = timezone.now()
    for kind in (Flag.Kind.NEW_NETWORK, Flag.Kind.VOLUME_SPIKE, Flag.Kind.SIGNS_TOGETHER):
        Flag.objects.create(
            project=project,
            api_key=key,
            kind=kind,
            severity=Flag.Severity.HIGH if kind == Flag.Kind.SIGNS_TOGETHER else "medium",
            dedupe_key=f"{kind}:{key.pk}",
            summary=f"{kind} of Leaked",
            first_seen=now - timedelta(minutes=30),
            last_seen=now - timedelta(minutes=9),
        )
    api_key_revoke(api_key=key, by=user)

    sign_in(page, "sec@example.com")
    nav = page.get_by_role("navigation", name="Project")
    nav.get_by_role("link", name="Alerts").click()
    expect(nav.get_by_role("link", name="Alerts")).to_contain_text("3")
    page.get_by_role("button", name="Acknowledge all 3 of this key: Leaked").first.click()
    expect(page.get_by_text("3 alerts of “Leaked” acknowledged.")).to_be_visible()
    expect(page.get_by_text("Nothing needs a look")).to_be_visible()
    expect(page.locator(".flag-done")).to_have_count(3)
    expect(nav.get_by_role("link", name="Alerts")).to_have_text("Alerts")
