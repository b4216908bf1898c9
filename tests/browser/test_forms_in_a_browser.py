"""Forms driven by htmx show their errors beside the field, and pages log no CSP errors."""

from playwright.sync_api import Page, expect

from accounts.services import user_sign_up
from tests.conftest import PASSWORD


def test_a_key_form_error_shows_beside_the_field_with_htmx_and_nothing_breaks_the_csp(
    page: Page, transactional_db
):
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    user_sign_up(email="forms@example.com", password=PASSWORD, name="Form", verified=True)
    page.goto("/account/login/")
    page.get_by_label("Email").fill("forms@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="API Keys").click()
    page.get_by_role("link", name="Create API key").click()
    page.get_by_role("button", name="Create key").click()
    expect(page.locator("#id_name_error")).to_have_text(
        "Give the key a name, so you can tell keys apart."
    )
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
