import csv
import io
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from accounts.models import Project, User
from apikeys.services import api_key_create
from tests.browser.test_accounts_in_a_browser import confirm_and_sign_in
from tests.browser.test_accounts_in_a_browser import sign_up as sign_up_only


def sign_up(page: Page, email: str, name: str) -> None:
    """Sign up, confirm the address from the email, and sign in."""
    sign_up_only(page, email, name)
    confirm_and_sign_in(page, email)


def test_filtering_the_project_audit_log_and_downloading_it(page: Page, transactional_db):
    sign_up(page, "lin@example.com", "Lin Wei")
    expect(page.get_by_role("heading", name="Lin's project")).to_be_visible()
    user = User.objects.get(email="lin@example.com")
    project = Project.objects.for_user(user).get()
    api_key_create(project=project, name="Production", created_by=user)

    page.get_by_label("Account menu").click()
    page.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Your account’s activity")).to_be_visible()
    expect(page.get_by_role("cell", name="Signed up")).to_be_visible()

    page.get_by_label("Switch project").click()
    page.get_by_role("link", name="Lin's project").click()
    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_label("Settings").get_by_role("link", name="Audit log").click()
    log = page.locator("#audit-log")
    expect(log.get_by_role("cell", name="Project created")).to_be_visible()
    expect(log.get_by_role("cell", name="API key created")).to_be_visible()

    page.get_by_label("Action").select_option("api_keys")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/settings/audit/\?action=api_keys$"))
    expect(log.get_by_role("cell", name="Project created")).to_have_count(0)
    expect(log.get_by_role("cell", name="API key created")).to_be_visible()

    page.get_by_label("IP address").fill("not an address")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator(".errorlist").get_by_text("Enter an IPv4 or IPv6 address")).to_be_visible()
    expect(page).to_have_url(re.compile(r"\?action=api_keys$"))

    page.get_by_label("IP address").fill("")
    page.get_by_role("button", name="Filter").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name=re.compile("Download CSV")).click()
    download = download_info.value
    assert re.fullmatch(
        rf"reminix-audit-{project.slug}-\d{{4}}-\d{{2}}-\d{{2}}\.csv", download.suggested_filename
    )
    rows = list(csv.reader(io.StringIO(Path(download.path()).read_text())))
    assert [row[3] for row in rows[1:]] == ["api_key.created"]


def test_the_audit_log_fits_360_pixels(page: Page, transactional_db):
    page.set_viewport_size({"width": 360, "height": 740})
    sign_up(page, "narrow@example.com", "Nora")
    expect(page.get_by_role("heading", name="Nora's project")).to_be_visible()
    user = User.objects.get(email="narrow@example.com")
    project = Project.objects.for_user(user).get()
    api_key_create(
        project=project, name="A rather long key name for a narrow screen", created_by=user
    )

    page.goto(f"/projects/{project.slug}/settings/audit/")
    expect(page.locator("#audit-log").get_by_text("API key created")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.goto("/account/audit/")
    expect(page.locator("#audit-log").get_by_text("Signed up")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
