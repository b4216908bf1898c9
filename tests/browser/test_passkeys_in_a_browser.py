"""Passkeys in Chromium, with its virtual authenticator (CDP WebAuthn domain): add one on
the Security page, sign in with it alone, use it as the second step after the password
and as the answer to the sudo prompt; a refused prompt explained beside the button; and
axe-core on the pages that list or offer a passkey."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Passkey, Project
from audit.models import AuditEvent
from tests.browser.signing_in import sign_in, sign_in_by_form
from tests.browser.test_accessibility import SIZES, small_targets, violations
from tests.conftest import PASSWORD


def virtual_authenticator(page: Page, *, verified: bool = True) -> tuple[object, str]:
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": verified,
            }
        },
    )
    return cdp, added["authenticatorId"]


def sign_out(page: Page) -> None:
    page.get_by_label("Account menu").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_add_a_passkey_then_sign_in_with_it_alone_and_as_the_second_step(
    page: Page, live_server, transactional_db, make_user, settings
):
    user = make_user(email="ines@example.com", name="Ines")
    project = Project.objects.for_user(user).get()
    cdp, authenticator = virtual_authenticator(page)

    sign_in(page, "ines@example.com")
    page.wait_for_url(f"**/projects/{project.slug}/")
    page.goto("/account/security/")  # sudo is fresh right after signing in
    expect(page.get_by_text("No passkeys yet.")).to_be_visible()
    page.get_by_label("Name for the new passkey").fill("Virtual laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator(".passkey-list")).to_contain_text("Virtual laptop")
    expect(page.get_by_text("Passkey “Virtual laptop” added")).to_be_visible()
    credentials = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})
    assert len(credentials["credentials"]) == 1
    assert credentials["credentials"][0]["isResidentCredential"] is True

    # Alone: no email, no password.
    sign_out(page)
    page.get_by_role("button", name="Continue with a passkey").click()
    page.wait_for_url(f"**/projects/{project.slug}/")
    assert Passkey.objects.get().last_used_at is not None
    assert AuditEvent.objects.filter(action="user.passkey_signed_in", actor=user).exists()
    # Its challenge rode in a cookie of its own, which the browser was told to forget.
    assert "passkey_challenge" not in {c["name"] for c in page.context.cookies()}

    # After the password, as the second step.
    sign_out(page)
    sign_in_by_form(page, "ines@example.com")
    page.wait_for_url("**/account/login/code/")
    page.get_by_role("button", name="Use a passkey").click()
    page.wait_for_url(f"**/projects/{project.slug}/")
    event = AuditEvent.objects.get(action="user.two_factor_passed")
    assert event.metadata == {"with": "passkey"}

    # And as the answer to the sudo prompt, before removing it.
    settings.SUDO_MODE_SECONDS = 0
    page.goto("/account/security/")
    page.get_by_role("button", name="Remove Virtual laptop").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("heading", name="Confirm it is you", level=1)).to_be_visible()
    page.get_by_role("button", name="Or use a passkey").click()
    expect(page.get_by_text("No passkeys yet.")).to_be_visible()
    assert not Passkey.objects.exists()


def test_a_refused_prompt_is_explained_beside_the_button(
    page: Page, live_server, transactional_db, make_user
):
    make_user(email="ines@example.com", name="Ines")
    # An authenticator with no passkey for us: the browser's prompt ends in a refusal.
    virtual_authenticator(page)
    page.goto("/account/login/")
    page.get_by_role("button", name="Continue with a passkey").click()
    expect(page.locator("[data-passkey-message]")).to_contain_text("Try again", timeout=15_000)
    expect(page.get_by_role("button", name="Continue with a passkey")).to_be_enabled()


@pytest.mark.parametrize("size", SIZES)
def test_the_passkey_pages_have_no_accessibility_violation(
    browser, live_server, transactional_db, make_user, size
):
    """axe-core, as in test_accessibility.py, on the pages with a passkey listed or offered
    (the sweep there signs in with a password alone, so its account has no passkey)."""
    user = make_user(email="ines@example.com", name="Ines")
    width, height = SIZES[size]
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": width, "height": height}, bypass_csp=True
    )
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: dict[str, list[str]] = {}
    page.goto("/account/login/")
    page.get_by_label("Email").fill("ines@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/projects/**")
    Passkey.objects.create(
        user=user, credential_id="A" * 43, public_key=b"k", user_handle=b"h", name="Laptop"
    )
    page.goto("/account/security/")
    page.get_by_text("Rename").click()
    problems["security"] = violations(page) + (small_targets(page) if size == "narrow" else [])
    page.get_by_label("Account menu").click()
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Email").fill("ines@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url("**/account/login/code/")
    expect(page.get_by_role("button", name="Use a passkey")).to_be_visible()
    problems["second step"] = violations(page)
    context.close()
    found = {label: v for label, v in problems.items() if v}
    assert not found, found
