"""Focus is never hidden (WCAG 2.4.11): the top bar stays on screen as the page scrolls,
so what takes focus must scroll clear of it, going up the page as well as down."""

from __future__ import annotations

from playwright.sync_api import Page

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD

UNDER_THE_BAR = """() => {
    const bar = document.querySelector(".topbar").getBoundingClientRect();
    const r = document.activeElement.getBoundingClientRect();
    return r.top < bar.bottom ? document.activeElement.getAttribute("aria-label")
      || document.activeElement.textContent.trim() : "";
}"""


def test_shift_tab_up_a_long_key_list_never_hides_focus_under_the_top_bar(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    for n in range(20):
        api_key_create(project=project, name=f"Key {n:02d}", created_by=user)
    page.set_viewport_size({"width": 1280, "height": 600})
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    page.get_by_role("link", name="Revoke Key 00").focus()

    hidden = []
    for _ in range(60):
        page.keyboard.press("Shift+Tab")
        if page.evaluate("document.activeElement.closest('main') === null"):
            break
        hidden.append(page.evaluate(UNDER_THE_BAR))
    assert [h for h in hidden if h] == []
