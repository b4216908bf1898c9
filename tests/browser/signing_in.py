"""Signing a browser in: through the sign-in view (sign_in), or by filling its form
(sign_in_by_form) where the form is part of what a test checks."""

from __future__ import annotations

from django.conf import settings
from playwright.sync_api import Page

from tests.conftest import PASSWORD


def sign_in(page: Page, email: str, *, at: str = "/") -> None:
    """Signed in as `email`, on the home page where the sign-in form leaves a person, or
    on the page `at` (a test going on elsewhere at once need not wait for the home page).

    The form's own view signs in, sent its fields by the context's request client, which
    shares the page's cookies: the same session, audit event and recorded session (this
    browser's user agent and address) as a click on Sign in, without loading the form's
    page and its scripts, filling two fields and loading the page after it (some 0.6 s of
    a test's 1-3 s). Tests of signing in itself use sign_in_by_form."""
    page.request.get("/account/login/")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    csrf = cookies[settings.CSRF_COOKIE_NAME]
    answer = page.request.post(
        "/account/login/",
        form={"username": email, "password": PASSWORD, "csrfmiddlewaretoken": csrf},
        max_redirects=0,
    )
    # A refused password answers 200 with the form again; a second factor sends elsewhere.
    assert (answer.status, answer.headers.get("location")) == (302, "/"), (
        f"signing in as {email} answered {answer.status} {answer.headers.get('location')}"
    )
    page.goto(at)


def sign_in_by_form(page: Page, email: str) -> None:
    """Signed in as `email` by filling the sign-in form and clicking Sign in."""
    page.goto("/account/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
