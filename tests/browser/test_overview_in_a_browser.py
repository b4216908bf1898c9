"""The usage overview in Chromium: filters and stackings through htmx with real addresses,
custom dates shown only for a custom range, the CSV download, and no CSP errors."""

import re
from datetime import timedelta
from pathlib import Path

from django.utils import timezone
from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.models import ApiKey
from apikeys.services import api_key_create, client_token_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD, usage_call
from usage.models import UsageRecord
from usage.writer import UsageEntry, usage_write


def entry(key: ApiKey, minutes_ago: int, **fields: object) -> UsageEntry:
    return usage_call(timezone.now() - timedelta(minutes=minutes_ago), key=key, **fields)


def test_filtering_and_splitting_the_overview_and_exporting_it(page: Page, transactional_db):
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    user = user_sign_up(email="overview@example.com", password=PASSWORD, name="Ada", verified=True)
    project = Project.objects.for_user(user).get()
    backend, _ = api_key_create(project=project, name="Backend", created_by=user)
    web, _ = api_key_create(project=project, name="Web app", created_by=user)
    minted, _ = client_token_create(project=project, api_key=web, context={})
    usage_write(
        [entry(backend, m) for m in range(1, 40, 3)]
        + [entry(backend, 50, status=401, error_code="invalid_api_key")]
        + [entry(web, m, client_token_id=minted.pk, ip="198.51.100.23") for m in range(2, 30, 4)]
    )
    calls = UsageRecord.objects.filter(project=project)
    total, by_client_tokens = calls.count(), calls.filter(token_kind="client_token").count()

    # Through the form: its page is one of those that must log no CSP error.
    page.goto("/account/login/")
    page.get_by_label("Email").fill("overview@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Usage").click()

    requests = page.locator(".overview-stats > div").first.locator("dd")
    expect(requests).to_have_text(str(total))
    expect(page.get_by_role("img", name="Calls per hour, last 24 hours")).to_be_visible()
    expect(page.get_by_label("From (UTC)")).to_be_hidden()
    page.get_by_label("Time range").select_option("custom")
    expect(page.get_by_label("From (UTC)")).to_be_visible()
    page.get_by_label("Time range").select_option("7d")

    page.get_by_label("Token type").select_option("client_token")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(f"/projects/{project.slug}/usage/?range=7d&token_kind=client_token")
    expect(requests).to_have_text(str(by_client_tokens))
    expect(page.get_by_role("img", name="Calls per day, last 7 days")).to_be_visible()

    page.get_by_role("navigation", name="Split the bars by").get_by_role("link", name="Key").click()
    expect(page).to_have_url(
        f"/projects/{project.slug}/usage/?range=7d&token_kind=client_token&stack=key"
    )
    expect(page.locator(".chart-legend")).to_contain_text("Web app")
    expect(page.get_by_label("Token type")).to_have_value("client_token")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    assert download.value.suggested_filename.startswith(f"reminix-usage-{project.slug}-")
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 1 + by_client_tokens
    assert all(",client_token," in line for line in lines[1:])

    page.go_back()
    expect(page).to_have_url(f"/projects/{project.slug}/usage/?range=7d&token_kind=client_token")
    expect(requests).to_have_text(str(by_client_tokens))
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors


def test_a_key_pasted_into_a_filter_leaves_the_address_and_the_history(
    page: Page, transactional_db
):
    """Sent by htmx, the page is opened again without it: not swapped in at the address
    that holds it, and no entry of the browser's history holds it either."""
    user = user_sign_up(email="pasted@example.com", password=PASSWORD, name="Ada", verified=True)
    project = Project.objects.for_user(user).get()
    _, secret = api_key_create(project=project, name="Backend", created_by=user)
    sign_in(page, "pasted@example.com")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="Usage").click()
    usage_url = f"/projects/{project.slug}/usage/"
    expect(page).to_have_url(usage_url)

    page.get_by_label("Time range").select_option("7d")
    page.get_by_role("textbox", name="IP address").fill(secret)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".token-pasted")).to_contain_text("it was removed from the address")
    # The other filters as the form sent them, the pasted one left out.
    expect(page).to_have_url(re.compile(rf"{usage_url}\?range=7d&since=&until=&key=&[^#]*$"))
    assert "ip=" not in page.url and secret[12:] not in page.content()
    expect(page.get_by_role("textbox", name="IP address")).to_have_value("")
    page.go_back()
    expect(page).to_have_url(usage_url)
