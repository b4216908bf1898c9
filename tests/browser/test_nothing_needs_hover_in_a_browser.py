"""Nothing is shown only to a pointer: what a tooltip (title) alone held is reachable by
keyboard, and shown on the page rather than hovered."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Locator, Page, expect

from accounts.models import Project
from accounts.services import (
    membership_add,
    membership_remove,
    project_set_key_policy,
    user_sign_up,
)
from apikeys.models import ALL_PERMISSIONS, ApiKey, ClientToken, PersonalAccessToken
from apikeys.services import api_key_create, client_token_create, personal_token_create
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD, usage_call
from usage.writer import usage_write
from webhooks.services import webhook_create


def test_a_long_client_token_context_opens_whole_by_keyboard(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    context = {"userId": "user_123", "plan": "enterprise", "region": "eu-west-1", "seat": 42}
    client_token_create(project=project, context=context, api_key=key)
    # As stored: PostgreSQL's jsonb keeps its own order of the keys, and the page shows it.
    stored = ClientToken.objects.get().context
    whole = json.dumps(stored, separators=(", ", ": "))
    assert len(whole) > 60  # longer than the table shows
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/client-tokens/")
    expect(page.get_by_text(whole, exact=True)).not_to_be_visible()

    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('td[data-label=Context]') !== null"):
            break
    else:
        raise AssertionError("no control in the Context cell takes focus")
    page.keyboard.press("Enter")
    expect(page.get_by_text(whole, exact=True)).to_be_visible()


def open_in_cell_by_keyboard(page: Page, cell: str) -> None:
    """Tabs to the first control inside `cell` (a CSS selector) and presses Enter."""
    for _ in range(120):
        page.keyboard.press("Tab")
        if page.evaluate(f"document.activeElement.closest({json.dumps(cell)}) !== null"):
            break
    else:
        raise AssertionError(f"no control in {cell} takes focus")
    page.keyboard.press("Enter")


def test_a_keys_exact_created_and_last_used_times_open_by_keyboard(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    used = timezone.now() - timedelta(minutes=5)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=used)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")

    for label, moment in (("Created", key.created_at), ("Last used", used)):
        cell = f"#key-table td[data-label='{label}']"
        exact = page.locator(cell).get_by_text(f"{moment:%-d %b %Y, %H:%M} UTC")
        expect(exact).not_to_be_visible()
        page.locator("h1").first.focus()
        open_in_cell_by_keyboard(page, cell)
        expect(exact).to_be_visible()


def test_a_cut_user_agent_in_the_call_log_opens_whole_by_keyboard(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    agent = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131"
    usage_write([usage_call(timezone.now() - timedelta(minutes=1), key=key, user_agent=agent)])
    sign_in(
        page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/{key.pk}/usage/"
    )
    whole = page.get_by_text(agent, exact=True)
    expect(whole).not_to_be_visible()
    open_in_cell_by_keyboard(page, "td.client .ua")
    expect(whole).to_be_visible()


def test_a_personal_tokens_networks_open_by_keyboard(page: Page, live_server, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    pat, _ = personal_token_create(user=user, name="CI")
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        allowed_networks=["198.51.100.0/24", "2001:db8::/32"]
    )
    sign_in(page, "kim@example.com", at="/account/tokens/")
    networks = page.get_by_text("198.51.100.0/24, 2001:db8::/32")
    expect(networks).not_to_be_visible()
    open_in_cell_by_keyboard(page, "td[data-label='Token']")
    expect(networks).to_be_visible()


def test_a_keys_allowed_networks_open_by_keyboard_and_lead_to_their_form(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    ApiKey.objects.filter(pk=key.pk).update(allowed_networks=["198.51.100.0/24", "2001:db8::/32"])
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")
    cell = "#key-table td[data-label='Key']"
    networks = page.locator(cell).get_by_text("198.51.100.0/24, 2001:db8::/32")
    expect(networks).not_to_be_visible()
    page.locator("h1").first.focus()
    open_in_cell_by_keyboard(page, cell)
    expect(networks).to_be_visible()
    # What the badge's link did stays one step away: the form that changes them.
    page.locator(cell).get_by_role("link", name="Change the networks of Backend").click()
    page.wait_for_url(f"**/api-keys/{key.pk}/usage/#networks")


SHOWS_WHOLE = """(cell, text) => {
    const box = cell.getBoundingClientRect();
    const walker = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (!node.textContent.includes(text) || !node.parentElement.checkVisibility()) continue;
        const range = document.createRange();
        range.selectNodeContents(node);
        const rects = [...range.getClientRects()].filter((r) => r.width > 0);
        const inside = (r) => r.left >= box.left - 1 && r.right <= box.right + 1;
        if (rects.length && rects.every(inside)) return true;
    }
    return false;
}"""


def shows_whole(cell: Locator, text: str) -> bool:
    """Whether `text` stands on the page whole inside `cell`: shown, and not cut by its edge."""
    return bool(cell.evaluate(SHOWS_WHOLE, text))


LONG_PATH = "/v1/agents/support-triage-assistant/invoke"


def three_call_logs_holding_a_call_to(page: Page, path: str) -> tuple[str, str, str]:
    """Kim signed in, with one call to `path` by a key and one by a personal token: the
    addresses of the key's, the project's and the token's call logs."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    pat, _ = personal_token_create(user=user, name="CI")
    at = timezone.now() - timedelta(minutes=1)
    usage_write(
        [
            usage_call(at, key=key, path=path),
            usage_call(at, pat=pat, project=project, path=path),
        ]
    )
    sign_in(page, "kim@example.com")
    return (
        f"/projects/{project.slug}/settings/api-keys/{key.pk}/usage/",
        f"/projects/{project.slug}/usage/calls/",
        f"/account/tokens/{pat.pk}/usage/",
    )


def test_a_cut_request_path_in_each_call_log_opens_whole_by_keyboard(
    page: Page, live_server, transactional_db
):
    path = LONG_PATH
    assert len(path) > 28  # longer than a desktop log shows
    page.set_viewport_size({"width": 1280, "height": 900})

    for url in three_call_logs_holding_a_call_to(page, path):
        page.goto(url)
        cell = page.locator("td.request").first
        assert not shows_whole(cell, path), url
        open_in_cell_by_keyboard(page, "td.request")
        assert shows_whole(cell, path), url


@pytest.mark.parametrize("width", [1280, 375])
def test_a_very_long_request_path_does_not_widen_the_page(
    page: Page, live_server, transactional_db, width
):
    """A path of hundreds of characters (a caller's mistake, or an id pasted into it) is
    cut in its column, and nothing of it reaches past the page: the cut summary's
    visually hidden "(show all)", placed at the end of the whole path, was positioned
    against the page rather than the summary that clips the path, and widened every call
    log to 2,476 px at 1280 (found by a fresh make run, 300 digits after /v1/api-keys/)."""
    page.set_viewport_size({"width": width, "height": 900})
    for url in three_call_logs_holding_a_call_to(page, "/v1/api-keys/key_" + "9" * 300):
        page.goto(url)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, url


UNCUT = """cell => {
    const style = getComputedStyle(cell);
    const edge = cell.getBoundingClientRect().right - parseFloat(style.paddingRight);
    const range = document.createRange();
    range.selectNodeContents(cell.querySelector(".path"));
    return range.getBoundingClientRect().right <= edge + 0.01;
}"""


@pytest.mark.parametrize("path", ["/v1/agents/my-agent/invoke", "/v1/agents/summariser/invoke"])
def test_a_path_of_28_characters_or_fewer_shows_uncut_in_each_call_log(
    page: Page, live_server, transactional_db, path
):
    """A path that short is shown plain, with nothing to open (the test below), so it
    must fit: the column's 28ch held the cell's 16 px of padding too, and the echo agent's
    path, the first every new project calls, read "/v1/agents/my-agent/invo…", with no
    way to see the rest."""
    assert len(path) <= 28
    page.set_viewport_size({"width": 1280, "height": 900})
    for url in three_call_logs_holding_a_call_to(page, path):
        page.goto(url)
        assert page.locator("td.request").first.evaluate(UNCUT), url


def test_a_short_request_path_is_not_a_control(page: Page, live_server, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    usage_write([usage_call(timezone.now(), key=key, path="/v1/projects/current")])
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/usage/calls/")
    expect(page.locator("td.request").first).to_contain_text("/v1/projects/current")
    expect(page.locator("td.request summary")).to_have_count(0)


def open_badge_by_keyboard(page: Page, cell: str, badge: str) -> None:
    """Tabs to the badge reading `badge` inside `cell` (a CSS selector) and presses Enter."""
    for _ in range(120):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            f"""(() => {{
                const el = document.activeElement;
                return el.closest({json.dumps(cell)}) !== null ? el.textContent.trim() : "";
            }})()"""
        )
        if focused == badge:
            break
    else:
        raise AssertionError(f"no badge {badge!r} in {cell} takes focus")
    page.keyboard.press("Enter")


def test_what_a_keys_badges_mean_opens_by_keyboard(page: Page, live_server, transactional_db):
    owner = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    leaver = user_sign_up(email="lou@example.com", password=PASSWORD, name="Lou", verified=True)
    project = Project.objects.for_user(owner).get()
    membership = membership_add(project=project, user=leaver, role="member", by=owner)
    api_key_create(project=project, name="Lou's deploys", created_by=leaver)
    membership_remove(membership=membership, by=owner)
    project_set_key_policy(project=project, max_key_days=90, max_pat_days=None, by=owner)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/api-keys/")

    for cell, badge, meaning in (
        ("td[data-label='Created']", "creator left", "Lou is no longer a member of this project"),
        ("td[data-label='Expires']", "out of policy", "keys should expire within 90 days"),
    ):
        explanation = page.locator(f"#key-table {cell}").get_by_text(meaning).first
        expect(explanation).not_to_be_visible()
        page.locator("h1").first.focus()
        open_badge_by_keyboard(page, f"#key-table {cell}", badge)
        expect(explanation).to_be_visible()


def test_what_an_endpoints_creator_left_badge_means_opens_by_keyboard(
    page: Page, live_server, transactional_db
):
    owner = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    leaver = user_sign_up(email="lee@example.com", password=PASSWORD, name="Lee", verified=True)
    project = Project.objects.for_user(owner).get()
    membership = membership_add(project=project, user=leaver, role="owner", by=owner)
    webhook_create(
        project=project,
        url="https://theirs.example.com/",
        created_by=leaver,
        format="generic",
        min_severity="low",
    )
    membership_remove(membership=membership, by=owner)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/webhooks/")
    explanation = page.get_by_text("Lee is no longer a member of this project")
    expect(explanation).not_to_be_visible()
    open_badge_by_keyboard(page, "td[data-label='Endpoint']", "creator left")
    expect(explanation).to_be_visible()


def test_what_an_endpoints_port_badge_means_opens_by_keyboard(
    page: Page, live_server, transactional_db
):
    owner = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(owner).get()
    webhook_create(
        project=project,
        url="https://older.example.com:9000/",  # added before ports were limited
        created_by=owner,
        format="generic",
        min_severity="low",
    )
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/webhooks/")
    explanation = page.get_by_text("Alerts still go to this endpoint on port 9000")
    expect(explanation).not_to_be_visible()
    open_badge_by_keyboard(page, "td[data-label='Endpoint']", "port 9000")
    expect(explanation).to_be_visible()


def test_what_a_personal_tokens_keys_badge_means_opens_by_keyboard(
    page: Page, live_server, transactional_db
):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    personal_token_create(user=user, name="CI", permissions=[*ALL_PERMISSIONS, "keys"])
    sign_in(page, "kim@example.com", at="/account/tokens/")
    explanation = page.get_by_text("May manage the API keys of the projects it reaches")
    expect(explanation).not_to_be_visible()
    open_badge_by_keyboard(page, "td[data-label='Reaches']", "keys")
    expect(explanation).to_be_visible()


@pytest.mark.parametrize("path", [LONG_PATH, "/v1/agents/my-agent/invoke"])
def test_a_client_tokens_whole_id_shows_in_a_keys_call_log(
    page: Page, live_server, transactional_db, path
):
    """Whatever the rows beside it. With one call alone the column had room for the id on
    the method's line; with a refused call from a long IPv6 address in the log, the other
    columns took their room, and the id, on the method's line, which could not wrap, was
    cut at the column's edge: "POST via ctok_VcYfS4Lkk5mPb6iLyh"."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Backend", created_by=user)
    token, _ = client_token_create(project=project, context={"userId": "u1"}, api_key=key)
    at = timezone.now() - timedelta(minutes=1)
    usage_write(
        [
            usage_call(at, client_token=token, path=path),
            # An earlier call from an IPv6 address, refused: the columns beside the
            # request take their room.
            usage_call(
                at - timedelta(minutes=1),
                key=key,
                ip="2001:db8:85a3::8a2e:370:7334",
                status=403,
                error_code="insufficient_permissions",
            ),
        ]
    )
    sign_in(page, "kim@example.com")

    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"/projects/{project.slug}/settings/api-keys/{key.pk}/usage/")
        cell = page.locator("td.request").first
        assert shows_whole(cell, token.public_id), width


def test_at_phone_width_a_long_request_path_shows_whole_once_in_each_call_log(
    page: Page, live_server, transactional_db
):
    """A phone's log wraps the path whole: a disclosure there would only show it again."""
    path = LONG_PATH
    page.set_viewport_size({"width": 390, "height": 900})

    for url in three_call_logs_holding_a_call_to(page, path):
        page.goto(url)
        page.evaluate("document.querySelectorAll('td.request details').forEach(d => d.open = true)")
        cell = page.locator("td.request").first
        assert shows_whole(cell, path), url
        expect(cell.get_by_text(path, exact=True).locator("visible=true")).to_have_count(1)
        expect(cell.locator("summary").locator("visible=true")).to_have_count(0)
        # The method and the path stay two words ("POST /v1/…", not "POST/v1/…").
        assert cell.evaluate("c => c.innerText.replace(/\\s+/g, ' ').trim()") == f"POST {path}", url
