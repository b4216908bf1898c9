"""Two-factor authentication in Chromium: enrol an authenticator app with a code computed
here, save the recovery codes, sign in again with a code; and the sudo prompt opening in
the Create API key dialog, which then shows the form it was asked for."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.models import ApiKey
from tests.browser.signing_in import sign_in, sign_in_by_form
from tests.conftest import PASSWORD


def test_enrol_an_authenticator_then_sign_in_with_a_code(page: Page, live_server, transactional_db):
    user = user_sign_up(email="ines@example.com", password=PASSWORD, name="Ines", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "ines@example.com")
    page.wait_for_url(f"**/projects/{project.slug}/")
    page.goto("/account/security/")
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator(".qr-code svg")).to_be_visible()
    secret = page.locator("code.setup-key").inner_text().strip()
    page.get_by_label("Code").fill("000000")
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator(".errorlist")).to_contain_text("That code is not right")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on").click()
    codes = page.get_by_role("textbox", name="Your recovery codes").input_value().split()
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them").click()
    expect(page.locator("#setup")).to_contain_text("10 of 10 recovery codes left")

    page.get_by_label("Account menu").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in_by_form(page, "ines@example.com")
    page.wait_for_url("**/account/login/code/")
    page.get_by_label("Code").fill(pyotp.TOTP(secret).at(time.time() + 30))
    page.get_by_role("button", name="Verify and sign in").click()
    page.wait_for_url(f"**/projects/{project.slug}/")


def test_the_sudo_prompt_opens_in_the_dialog_and_the_form_follows(
    page: Page, live_server, transactional_db, settings
):
    user = user_sign_up(email="ines@example.com", password=PASSWORD, name="Ines", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "ines@example.com")
    page.wait_for_url(f"**/projects/{project.slug}/")
    settings.SUDO_MODE_SECONDS = 0  # every check is too old from now on
    page.goto(f"/projects/{project.slug}/settings/api-keys/")
    page.get_by_role("link", name="Create API key").click()
    dialog = page.locator("dialog.panel-dialog")
    expect(dialog).to_contain_text("Confirm it is you")
    expect(page.get_by_label("Password")).to_be_focused()
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    expect(dialog.get_by_label("Name", exact=True)).to_be_visible()
    settings.SUDO_MODE_SECONDS = 600
    dialog.get_by_label("Name", exact=True).fill("After sudo")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Your new API key", exact=True)).to_be_visible()
    assert ApiKey.objects.filter(name="After sudo").exists()


def prompted_on_the_key_policy(page: Page, settings, email: str) -> Project:
    """Sign in as a new owner, then save the key policy (keys expire within 30 days) with
    the last check of who they are too old: the sudo prompt takes the whole page."""
    user = user_sign_up(email=email, password=PASSWORD, name="Jo", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, email)
    page.wait_for_url(f"**/projects/{project.slug}/")
    settings.SUDO_MODE_SECONDS = 0
    page.goto(f"/projects/{project.slug}/settings/")
    page.get_by_label("API keys expire within").select_option("30")
    page.get_by_role("button", name="Save key policy").click()
    expect(page.get_by_role("heading", name="Confirm it is you", level=1)).to_be_visible()
    return project


def test_the_sudo_prompt_that_interrupts_a_settings_form_takes_focus_then_saves_it(
    page: Page, live_server, transactional_db, settings
):
    project = prompted_on_the_key_policy(page, settings, "jon@example.com")
    # The whole page is the prompt: the password field has focus, so typing goes there.
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(PASSWORD)
    settings.SUDO_MODE_SECONDS = 600
    page.keyboard.press("Enter")
    expect(page.get_by_label("API keys expire within")).to_have_value("30")
    project.refresh_from_db()
    assert project.max_key_lifetime_days == 30


def test_cancelling_the_sudo_prompt_goes_back_to_the_form_and_saves_nothing(
    page: Page, live_server, transactional_db, settings
):
    project = prompted_on_the_key_policy(page, settings, "kim@example.com")
    page.get_by_label("Password").fill("not the password")
    page.keyboard.press("Enter")
    expect(page.locator(".errorlist")).to_contain_text("That is not right")
    page.get_by_role("link", name="Cancel").click()
    page.wait_for_url(f"**/projects/{project.slug}/settings/")
    expect(page.get_by_label("API keys expire within")).to_be_visible()
    project.refresh_from_db()
    assert project.max_key_lifetime_days is None


def test_the_first_setup_step_reads_as_one_sentence_above_its_qr_code(page: Page, transactional_db):
    """The QR code sat inline in the sentence that introduces it, so at phone width
    "…Google Authenticator," and "Authy…)." were split around it, and on a desktop the
    sentence hung at the code's bottom edge."""
    user_sign_up(email="ines@example.com", password=PASSWORD, name="Ines", verified=True)
    sign_in(page, "ines@example.com", at="/account/security/")
    page.get_by_role("button", name="Set up an authenticator app").click()
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        sentence_bottom, code_top = page.evaluate(
            """() => {
                const step = document.querySelector("ol.steps > li");
                const range = document.createRange();
                range.selectNodeContents(step.firstChild);
                const lines = Array.from(range.getClientRects());
                return [Math.max(...lines.map(r => r.bottom)),
                        step.querySelector(".qr-code").getBoundingClientRect().top];
            }"""
        )
        assert sentence_bottom <= code_top, width
