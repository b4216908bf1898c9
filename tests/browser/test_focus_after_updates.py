"""After an htmx update replaces what had focus, focus lands somewhere useful, never on
<body>: the first field with an error, else the updated region."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from alerts.detection import detect
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD, usage_call
from usage.writer import usage_write


def focus_of(page: Page) -> str:
    return str(
        page.evaluate(
            "() => { const e = document.activeElement; if (e === document.body) return 'BODY';"
            " return e.id || e.getAttribute('name') || e.tagName; }"
        )
    )


def test_filters_errors_and_acknowledging_keep_focus_off_the_body(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Leaked", created_by=user)
    key.revoke(by=None)
    now = timezone.now()
    usage_write([usage_call(now, key=key, status=401, error_code="expired_api_key")])
    detect(now=now + timedelta(minutes=1))
    sign_in(page, "kim@example.com")

    page.goto(f"/projects/{project.slug}/usage/")
    page.get_by_role("textbox", name="IP address").fill("²")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("textbox", name="IP address")).to_have_attribute("aria-invalid", "true")
    page.wait_for_function("() => document.activeElement !== document.body")
    assert focus_of(page) == "id_ip"
    expect(page.locator("#announcer")).to_contain_text("There is a problem")

    page.get_by_role("textbox", name="IP address").fill("")
    page.get_by_label("Outcome").select_option("revoked_key")
    page.get_by_role("button", name="Filter").click()
    # The form stayed, and so does focus (on Filter); the change is announced.
    expect(page.locator("#announcer")).to_contain_text("updated")
    assert focus_of(page) != "BODY"

    page.goto(f"/projects/{project.slug}/alerts/")
    page.get_by_role("button", name="Acknowledge").first.click()
    # The alert list answers, then reloads itself (flags changed): focus is judged once
    # both are done, not between them.
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => document.activeElement !== document.body", timeout=5000)
    assert focus_of(page) != "BODY"
