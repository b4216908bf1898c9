import json
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD


def call_invoke(base_url: str, token: str) -> tuple[int, dict, str]:
    request = urllib.request.Request(
        f"{base_url}/v1/agents/my-agent/invoke",
        data=json.dumps({"prompt": "hello"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response), response.headers["X-Request-Id"]
    except urllib.error.HTTPError as error:
        return error.code, json.load(error), error.headers["X-Request-Id"]


def test_a_key_from_creation_to_revocation(page: Page, live_server, transactional_db):
    user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    sign_in(page, "kim@example.com")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="API Keys").click()

    page.get_by_role("link", name="Create API key").click()
    page.get_by_label("Name").fill("Production")
    page.get_by_role("button", name="Create key").click()
    secret = page.get_by_label("Your new API key", exact=True)
    expect(secret).to_be_visible()
    token = secret.input_value()
    assert token.startswith("reminix_sk_") and len(token) == 47
    # The table updated in place, without a page load, and shows only the hint.
    row = page.locator("#key-table tr", has_text="Production")
    expect(row).to_contain_text(f"{token[:15]}…{token[-4:]}")

    status, body, first_request_id = call_invoke(live_server.url, token)
    assert (status, body["output"]) == (200, "hello")

    page.get_by_role("link", name="I have copied it").click()
    expect(page.get_by_label("Your new API key", exact=True)).to_have_count(0)
    page.locator("#key-table").get_by_role("link", name="Usage").click()
    expect(page.get_by_text(first_request_id)).to_be_visible()

    page.go_back()
    page.get_by_role("link", name="Revoke Production").click()
    expect(page.get_by_role("heading", name="Revoke “Production”?")).to_be_visible()
    page.get_by_role("button", name="Revoke “Production”").click()
    expect(page.get_by_text("is revoked")).to_be_visible()
    expect(page.locator("#key-table").get_by_text("revoked", exact=True)).to_be_visible()

    status, body, refused_request_id = call_invoke(live_server.url, token)
    assert status == 401
    assert body["error"]["code"] == "expired_api_key"
    assert "revoked" in body["error"]["message"]

    page.locator("#key-table").get_by_role("link", name="Usage").click()
    refused_row = page.locator("tr", has_text=refused_request_id)
    expect(refused_row).to_contain_text("expired_api_key")
    expect(refused_row).to_contain_text("401")

    page.go_back()
    page.reload()
    assert token not in page.content()
    page.go_back()
    assert token not in page.content()


def test_suspend_a_key_with_a_reason_then_resume_it(page: Page, live_server, transactional_db):
    from accounts.models import Project
    from apikeys.services import api_key_create

    user = user_sign_up(email="lee@example.com", password=PASSWORD, name="Lee", verified=True)
    project = Project.objects.for_user(user).get()
    _, token = api_key_create(project=project, name="Production", created_by=user)
    sign_in(page, "lee@example.com", at=f"/projects/{project.slug}/settings/api-keys/")

    page.get_by_role("link", name="Suspend Production").click()
    page.get_by_role("button", name="Suspend “Production”").click()
    expect(page.locator(".errorlist").get_by_text("Say why")).to_be_visible()  # nothing lost
    page.get_by_label("Reason").fill("Seen from an unknown network")
    page.get_by_role("button", name="Suspend “Production”").click()
    expect(page.get_by_text("is suspended")).to_be_visible()
    row = page.locator("#key-table tr", has_text="Production")
    expect(row).to_contain_text("suspended")
    expect(row).to_contain_text("Seen from an unknown network")

    status, body, _ = call_invoke(live_server.url, token)
    assert (status, body["error"]["code"]) == (401, "suspended_api_key")
    assert "Seen from an unknown network" in body["error"]["message"]

    page.get_by_role("button", name="Resume Production").click()
    expect(page.get_by_text("is resumed")).to_be_visible()
    expect(page.locator("#key-table tr", has_text="Production")).not_to_contain_text("suspended")
    status, body, _ = call_invoke(live_server.url, token)
    assert (status, body["output"]) == (200, "hello")


def test_roll_a_key_with_an_overlap_then_stop_the_old_secret(
    page: Page, live_server, transactional_db
):
    """Issue 11, point 1: the new secret is shown once, both work during the overlap, the
    row counts down, and 'Stop it now' ends the old one, which then names the new one."""
    from accounts.models import Project
    from apikeys.services import api_key_create

    user = user_sign_up(email="ro@example.com", password=PASSWORD, name="Ro", verified=True)
    project = Project.objects.for_user(user).get()
    _, old = api_key_create(project=project, name="Production", created_by=user)
    sign_in(page, "ro@example.com", at=f"/projects/{project.slug}/settings/api-keys/")

    page.get_by_role("link", name="Roll Production").click()
    page.get_by_label("For 1 hour").check()
    page.get_by_role("button", name="Roll “Production”").click()
    secret = page.get_by_label("Your new API key", exact=True)
    expect(secret).to_be_visible()
    new = secret.input_value()
    assert new.startswith("reminix_sk_") and new != old
    expect(page.get_by_text(f"The old secret {old[:15]}…{old[-4:]} works until")).to_be_visible()
    assert call_invoke(live_server.url, old)[0] == 200
    assert call_invoke(live_server.url, new)[0] == 200

    page.get_by_role("link", name="I have copied it").click()
    row = page.locator("#key-table tr", has_text="Production")
    expect(row.locator("time[data-countdown]")).to_contain_text("in ")
    # Its name starts with the words on it (WCAG 2.5.3), and says whose secret it stops.
    row.get_by_role("button", name="Stop it now: the old secret of Production", exact=True).click()
    asked = page.get_by_role("dialog")
    expect(asked).to_contain_text(f"Stop the old secret {old[:15]}…{old[-4:]} now?")
    asked.get_by_role("button", name="Stop it now").click()
    expect(page.get_by_text("has stopped working")).to_be_visible()
    expect(page.locator("#key-table time[data-countdown]")).to_have_count(0)

    status, body, _ = call_invoke(live_server.url, old)
    assert (status, body["error"]["code"]) == (401, "expired_api_key")
    assert f"{new[:15]}…{new[-4:]}" in body["error"]["message"]
    assert call_invoke(live_server.url, new)[0] == 200
    assert new not in page.content()


def test_a_revoke_asks_first_and_cancel_or_escape_changes_nothing(
    page: Page, live_server, transactional_db
):
    from accounts.models import Project
    from apikeys.models import ClientToken
    from apikeys.services import api_key_create, client_token_create

    user = user_sign_up(email="ola@example.com", password=PASSWORD, name="Ola", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Web", created_by=user)
    token, _ = client_token_create(project=project, context={"user": "u1"}, api_key=key)
    sign_in(page, "ola@example.com", at=f"/projects/{project.slug}/settings/client-tokens/")
    revoke = page.get_by_role("button", name=f"Revoke {token.public_id}")

    revoke.click()
    asked = page.get_by_role("dialog")
    expect(asked).to_contain_text(f"Revoke client token {token.public_id}?")
    expect(asked.get_by_role("button", name="Cancel")).to_be_focused()
    asked.get_by_role("button", name="Cancel").click()
    expect(asked).to_have_count(0)
    expect(revoke).to_be_focused()

    revoke.click()
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)
    page.reload()
    assert ClientToken.objects.get(pk=token.pk).revoked_at is None

    revoke.click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_text(f"Client token {token.public_id} is revoked.")).to_be_visible()
    assert ClientToken.objects.get(pk=token.pk).revoked_at is not None


def test_a_rename_sent_after_the_key_was_revoked_says_so_in_the_dialog(
    page: Page, live_server, transactional_db
):
    """Revoked (from another tab, by someone else) while its rename dialog was open: Save
    shows why it cannot be renamed where the form was, and the list marks it revoked."""
    user = user_sign_up(email="ola@example.com", password=PASSWORD, name="Ola", verified=True)
    project = Project.objects.for_user(user).get()
    api_key, _ = api_key_create(project=project, name="Production", created_by=user)
    sign_in(page, "ola@example.com")
    page.get_by_role("navigation", name="Project").get_by_role("link", name="API Keys").click()
    page.locator("#key-table tr", has_text="Production").get_by_role("link", name="Rename").click()
    page.locator("#key-panel").get_by_label("Name", exact=True).fill("Renamed")

    api_key.revoke(by=None)
    page.get_by_role("button", name="Save").click()

    expect(page.locator("#key-panel")).to_contain_text("cannot be renamed")
    expect(page.locator("#key-panel input")).to_have_count(0)
    expect(page.locator("[data-request-error]")).to_have_count(0)
    expect(page.locator("#key-table .badge-danger")).to_have_text("revoked")


def test_back_and_forward_over_a_search_never_bring_a_new_key_back(
    page: Page, live_server, transactional_db
):
    # htmx keeps a copy of a page it leaves through its history (a search's pushed
    # address, and the Back button from one) in sessionStorage, and puts that copy back on
    # Forward. A page left with the new key on it must not be copied.
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    sign_in(page, "kim@example.com")
    page.wait_for_url(f"**/projects/{project.slug}/")
    page.goto(f"/projects/{project.slug}/settings/api-keys/")
    page.get_by_role("searchbox", name="Search keys").fill("Prod")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/api-keys/?q=Prod*")
    page.get_by_role("link", name="Create API key").click()
    page.get_by_label("Name", exact=True).fill("Production")
    page.get_by_role("button", name="Create key").click()
    token = page.get_by_label("Your new API key", exact=True).input_value()

    page.go_back()
    expect(page.get_by_label("Your new API key", exact=True)).to_have_count(0)
    page.go_forward()
    page.wait_for_url("**/api-keys/?q=Prod*")
    expect(page.locator("#key-table")).to_contain_text("match “Prod”")
    assert token not in page.content()
    kept = page.evaluate("JSON.stringify(Object.assign({}, sessionStorage, localStorage))")
    assert token not in kept
