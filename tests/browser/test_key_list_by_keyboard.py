"""A long key list, by keyboard alone: each panel opens as a dialog in view with focus
inside, Escape closes it, and focus comes back to the row it was opened from."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.models import ApiKey
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD


def in_view(page: Page, selector: str) -> bool:
    return bool(
        page.evaluate(
            """(s) => { const r = document.querySelector(s).getBoundingClientRect();
                return r.top >= 0 && r.bottom <= window.innerHeight; }""",
            selector,
        )
    )


def focused(page: Page) -> str:
    return str(
        page.evaluate(
            "document.activeElement.getAttribute('aria-label') || document.activeElement.id "
            "|| document.activeElement.textContent.trim()"
        )
    )


def test_rename_and_revoke_from_the_fifteenth_row_by_keyboard(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    for n in range(18):
        api_key_create(project=project, name=f"Key {n:02d}", created_by=user)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    rows = page.locator("#key-table tbody tr")
    expect(rows).to_have_count(18)
    row = rows.nth(14)
    name = row.locator("td").first.inner_text().split("\n")[0].strip()

    rename = row.get_by_role("link", name="Rename")
    rename.focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog.panel-dialog")
    expect(dialog).to_be_visible()
    assert in_view(page, "dialog.panel-dialog")
    assert page.evaluate("document.activeElement.closest('dialog') !== null")

    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    assert page.evaluate("document.activeElement.textContent.trim()") == "Rename"

    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    page.keyboard.press("Control+A")
    page.keyboard.type("Renamed by keyboard")
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    expect(page.locator("#key-table")).to_contain_text("Renamed by keyboard")
    assert ApiKey.objects.filter(name="Renamed by keyboard").exists()
    # Back on the renamed row once the list is redrawn.
    page.wait_for_function(
        "() => (document.activeElement.closest('tr') || {textContent: ''})"
        ".textContent.includes('Renamed by keyboard')"
    )
    assert focused(page) == "Rename"

    revoke = page.get_by_role("link", name="Revoke Renamed by keyboard")
    revoke.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    assert in_view(page, "dialog.panel-dialog")
    expect(dialog).to_contain_text("Renamed by keyboard")
    dialog.get_by_role("link", name="Cancel").click()
    expect(dialog).to_have_count(0)
    assert focused(page) == "Revoke Renamed by keyboard"
    assert ApiKey.objects.get(name="Renamed by keyboard").revoked_at is None
    assert name != "Renamed by keyboard"


def test_at_360_pixels_a_new_key_is_shown_whole_and_in_view(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    for n in range(12):
        api_key_create(project=project, name=f"Key {n:02d}", created_by=user)
    page.set_viewport_size({"width": 360, "height": 740})
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    page.get_by_role("link", name="Create API key").click()
    expect(page.locator("dialog.panel-dialog")).to_be_visible()
    page.keyboard.type("Phone key")  # focus is in the name field already
    page.keyboard.press("Enter")
    secret = page.get_by_label("Your new API key", exact=True)
    expect(secret).to_be_focused()
    assert secret.input_value().startswith("reminix_sk_")
    assert in_view(page, "dialog.panel-dialog")
    # Nothing of the key is hidden inside its box, and the warning is not under the header.
    assert page.evaluate(
        "() => { const t = document.getElementById('new-key-value');"
        " return t.scrollWidth <= t.clientWidth && t.scrollHeight <= t.clientHeight; }"
    )
    expect(page.locator(".panel-secret")).to_be_visible()  # once htmx has settled
    assert in_view(page, ".panel-secret p")


def test_create_copy_and_revoke_by_keyboard_alone(page: Page, live_server, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    for n in range(18):
        api_key_create(project=project, name=f"Key {n:02d}", created_by=user)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")

    page.get_by_role("link", name="Create API key").focus()
    page.keyboard.press("Enter")
    dialog = page.locator("dialog.panel-dialog")
    expect(dialog).to_be_visible()
    expect(page.get_by_label("Name", exact=True)).to_be_focused()
    page.keyboard.type("Made by keyboard")
    page.keyboard.press("Enter")
    secret_box = page.get_by_label("Your new API key", exact=True)
    expect(secret_box).to_be_focused()
    secret = secret_box.input_value()
    assert secret.startswith("reminix_sk_")
    # The list behind reloads after the create; focus must stay where it is meanwhile.
    expect(page.locator("#key-table")).to_contain_text("Made by keyboard")
    expect(secret_box).to_be_focused()

    page.keyboard.press("Tab")
    expect(dialog.get_by_role("button", name="Copy")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog.get_by_role("button", name="Copied")).to_be_visible()

    page.keyboard.press("Tab")
    expect(dialog.get_by_role("link", name="I have copied it")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    # The secret is gone from the page, and focus is back where the person started.
    assert secret not in page.content()
    assert focused(page) == "Create API key"
    assert page.evaluate("() => navigator.clipboard.readText()") == secret

    revoke = page.get_by_role("link", name="Revoke Made by keyboard")
    revoke.focus()
    page.keyboard.press("Enter")
    expect(dialog).to_be_visible()
    assert in_view(page, "dialog.panel-dialog")
    page.keyboard.press("Tab")  # from the dialog itself to its first control
    expect(dialog.get_by_role("button", name="Revoke “Made by keyboard”")).to_be_focused()
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    expect(page.locator(".row-ended")).to_contain_text("Made by keyboard")
    assert ApiKey.objects.get(name="Made by keyboard").revoked_at is not None
    # Focus follows the key to its row among the ended ones.
    page.wait_for_function(
        "() => (document.activeElement.closest('tr.row-ended') || {textContent: ''})"
        ".textContent.includes('Made by keyboard')"
    )


def test_after_suspending_the_fifteenth_row_focus_is_on_its_resume_button(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    for n in range(18):
        api_key_create(project=project, name=f"Key {n:02d}", created_by=user)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    name = page.locator("#key-table tbody tr").nth(14).locator("strong").first.inner_text()

    page.get_by_role("link", name=f"Suspend {name}").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Reason")).to_be_focused()
    page.keyboard.type("Rotating it")
    page.keyboard.press("Enter")
    expect(page.locator("dialog.panel-dialog")).to_have_count(0)
    # Its Suspend link became a Resume button: focus goes there, in the same row, not to
    # the page's heading far above it.
    page.wait_for_function(
        "(name) => document.activeElement.getAttribute('aria-label') === 'Resume ' + name", arg=name
    )
    assert in_view(page, "#key-table tr:has(:focus)")


def test_after_resuming_the_fifteenth_row_focus_is_on_its_suspend_link(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    for n in range(18):
        key, _ = api_key_create(project=project, name=f"Key {n:02d}", created_by=user)
        key.suspend(by=user, reason="Paused")
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    name = page.locator("#key-table tbody tr").nth(14).locator("strong").first.inner_text()

    page.get_by_role("button", name=f"Resume {name}").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#messages")).to_contain_text("is resumed")
    # Its Resume button became a Suspend link: focus goes there, in the same row.
    page.wait_for_function(
        "(name) => document.activeElement.getAttribute('aria-label') === 'Suspend ' + name",
        arg=name,
    )
