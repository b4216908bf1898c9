"""Nothing is shown only to a pointer: what a tooltip (title) alone held is reachable by
keyboard, and shown on the page rather than hovered."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.services import api_key_create, client_token_create
from tests.browser.test_api_keys_in_a_browser import sign_in
from tests.conftest import PASSWORD


def test_a_long_client_token_context_opens_whole_by_keyboard(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    context = {"userId": "user_123", "plan": "enterprise", "region": "eu-west-1", "seat": 42}
    client_token_create(project=project, context=context, api_key=key)
    whole = json.dumps(context, separators=(", ", ": "))
    assert len(whole) > 60  # longer than the table shows
    sign_in(page, "kim@example.com")
    page.goto(f"/projects/{project.slug}/settings/client-tokens/")
    expect(page.get_by_text(whole, exact=True)).not_to_be_visible()

    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('td[data-label=Context]') !== null"):
            break
    else:
        raise AssertionError("no control in the Context cell takes focus")
    page.keyboard.press("Enter")
    expect(page.get_by_text(whole, exact=True)).to_be_visible()
