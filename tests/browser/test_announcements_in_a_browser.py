"""What a screen reader hears: the outcome of an action is said in a live region, not only
shown (a button whose label changes while it has focus is read by some and not others)."""

from __future__ import annotations

import re
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

# What is added to the page's live regions once it has loaded: what a screen reader says.
SAID_AFTER_LOAD = """
window.saidAfterLoad = [];
document.addEventListener("DOMContentLoaded", () => {
  new MutationObserver(records => records.forEach(r => r.addedNodes.forEach(n => {
    const region = r.target.closest && r.target.closest("[aria-live]");
    if (region && n.textContent.trim()) window.saidAfterLoad.push(n.textContent.trim());
  }))).observe(document.body, {childList: true, subtree: true, characterData: true});
}, {capture: true});
"""


def create_a_key_by_keyboard(page: Page, slug: str, name: str) -> None:
    page.goto(f"/projects/{slug}/settings/api-keys/")
    page.get_by_role("link", name="Create API key").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    expect(page.get_by_label("Your new API key", exact=True)).to_be_focused()


def test_copying_a_new_secret_is_announced(page: Page, live_server, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "kim@example.com")
    create_a_key_by_keyboard(page, project.slug, "Announced")

    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Copy")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="copied")).to_have_count(1)
    secret = page.get_by_label("Your new API key", exact=True).input_value()
    assert page.evaluate("() => navigator.clipboard.readText()") == secret


def test_the_key_list_redrawn_after_a_create_leaves_focus_on_the_copy_button(
    page: Page, live_server, transactional_db
):
    """The list reloads after a create (apiKeysChanged); when that answer came after a
    person had tabbed to Copy, focus was pulled back to the secret, and their Enter did
    nothing."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "kim@example.com")
    create_a_key_by_keyboard(page, project.slug, "Late list")
    # The create's own reload of the list first, swapped in and settled: htmx listens on
    # the new list only once it has settled (20 ms after the swap), and a trigger in
    # between reached no list, so no answer came (CI, on a loaded machine; reproduced
    # with a settle delay of 1.5 s).
    page.wait_for_function(
        "() => { const list = document.querySelector('#key-table');"
        " return list.textContent.includes('Late list')"
        " && !list.classList.contains('htmx-settling'); }"
    )
    page.keyboard.press("Tab")
    copy = page.get_by_role("button", name="Copy")
    expect(copy).to_be_focused()

    with page.expect_response(lambda r: r.url.endswith("/settings/api-keys/")):
        page.evaluate("() => htmx.trigger(document.body, 'apiKeysChanged')")
    expect(page.locator("#key-table")).to_contain_text("Late list")
    page.wait_for_timeout(100)  # htmx settles the swap after the answer
    expect(copy).to_be_focused()


def test_a_copy_the_browser_refuses_says_so_and_selects_the_secret(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "kim@example.com")
    create_a_key_by_keyboard(page, project.slug, "Refused")
    # A browser or policy that refuses scripts the clipboard.
    page.evaluate(
        "() => { navigator.clipboard.writeText = () => "
        "Promise.reject(new DOMException('Refused', 'NotAllowedError')); }"
    )

    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Copy")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status").filter(has_text="Ctrl+C")).to_have_count(1)
    secret_box = page.get_by_label("Your new API key", exact=True)
    expect(secret_box).to_be_focused()
    assert page.evaluate(
        "() => { const e = document.activeElement; return e.selectionEnd - e.selectionStart; }"
    ) == len(secret_box.input_value())


def test_a_form_refused_by_a_page_load_puts_focus_on_its_first_field_in_error(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/members/")
    page.get_by_label("Email").focus()
    page.keyboard.type("not an address")
    page.keyboard.press("Enter")  # a plain form: the whole page comes back, with the error

    email = page.get_by_label("Email")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_be_focused()
    # What a screen reader says with the field: its error.
    expect(email).to_have_accessible_description(re.compile("Enter a valid email address"))


def test_the_outcome_of_a_plain_form_is_said_once_its_page_has_loaded(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/members/")
    page.add_init_script(SAID_AFTER_LOAD)
    page.get_by_label("Email").focus()
    page.keyboard.type("bo@example.com")
    page.keyboard.press("Enter")

    # A live region says only what changes in it after the page has loaded: the message
    # the page arrived with is put into it again then, and is on the page once.
    expect(page.locator("#messages")).to_contain_text("Invitation sent to bo@example.com")
    page.wait_for_function("() => window.saidAfterLoad.length > 0")
    assert "Invitation sent to bo@example.com" in page.evaluate("window.saidAfterLoad.join(' ')")
    expect(page.get_by_text("Invitation sent to bo@example.com")).to_have_count(1)


def test_revoking_a_key_says_it_is_revoked_without_a_second_voice_over_it(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    api_key_create(project=project, name="Old", created_by=user)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    page.get_by_role("link", name="Revoke Old").focus()
    page.keyboard.press("Enter")
    expect(page.locator("dialog.panel-dialog")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Revoke “Old”")).to_be_focused()
    page.keyboard.press("Enter")

    expect(page.locator("#messages")).to_contain_text("“Old” is revoked")
    expect(page.locator(".row-ended")).to_contain_text("Old")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)  # the announcer speaks 50 ms after an update
    # Two polite live regions changed at once: some screen readers say only the last, and
    # that was a bare "Updated.".
    assert page.locator("#announcer").count() == 0 or "Updated" not in (
        page.locator("#announcer").text_content() or ""
    )


def test_acknowledging_an_alert_is_said_by_its_message_not_drowned_by_the_reload(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Leaked", created_by=user)
    key.revoke(by=None)
    now = timezone.now()
    usage_write([usage_call(now, key=key, status=401, error_code="expired_api_key")])
    detect(now=now + timedelta(minutes=1))
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/alerts/")
    page.get_by_role("button", name="Acknowledge").first.focus()
    page.keyboard.press("Enter")

    expect(page.locator("#messages")).to_contain_text("Alert acknowledged")
    # The list then reloads itself (flags changed): that is the same action, not news.
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(300)
    assert page.locator("#announcer").count() == 0 or "updated" not in (
        page.locator("#announcer").text_content() or ""
    )


def test_a_panel_dialog_is_described_by_what_it_warns_of(page: Page, live_server, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    api_key_create(project=project, name="Busy", created_by=user)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    page.get_by_role("link", name="Suspend Busy").focus()
    page.keyboard.press("Enter")
    # Focus goes to the Reason field: a screen reader says the dialog's name and
    # description with it, so the description must be the dialog's own.
    expect(page.get_by_label("Reason")).to_be_focused()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_have_accessible_name(re.compile("Suspend “Busy”"))
    expect(dialog).to_have_accessible_description(re.compile("will fail with 401"))
    page.keyboard.press("Escape")

    # Create, then the new secret, in one dialog: named after the panel it holds now.
    create_a_key_by_keyboard(page, project.slug, "Shown once")
    expect(dialog).to_have_accessible_name(re.compile("Copy your new API key “Shown once” now"))
    expect(dialog).to_have_accessible_description(re.compile("only time it is shown"))
