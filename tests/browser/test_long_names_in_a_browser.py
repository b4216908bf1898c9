"""Long names and addresses, as real customers have them, stay inside their boxes at phone
width and on a desktop: an email of 80 characters, a key named in a whole sentence. Before,
they ran past the card, the banner and the confirm button, and a dialog's own buttons
pushed it into a sideways scroll that hid its left edge."""

from __future__ import annotations

import re

from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import Project
from accounts.services import user_sign_up
from apikeys.services import api_key_create
from tests.browser.signing_in import sign_in, sign_in_by_form
from tests.conftest import PASSWORD

LONG_EMAIL = "maximilian.alexander.featherstonehaugh@very-long-subsidiary.example-company.com"
LONG_NAME = "Production backend for the EU region, primary cluster, do not delete"
NARROW = {"width": 390, "height": 844}


def sideways_scroll(page: Page) -> int:
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def wider_than_their_box(page: Page, selector: str) -> list[str]:
    """Boxes matching `selector` whose content runs past their own edge."""
    return list(
        page.evaluate(
            """(selector) => Array.from(document.querySelectorAll(selector))
                .filter(e => e.getBoundingClientRect().width > 0
                  && e.scrollWidth > e.clientWidth + 1)
                .map(e => `${selector} wider by ${e.scrollWidth - e.clientWidth} px`)""",
            selector,
        )
    )


def test_a_long_address_stays_on_screen_from_sign_up_to_confirmation(page: Page, transactional_db):
    page.set_viewport_size(NARROW)
    page.goto("/account/signup/")
    page.get_by_label("Email").fill(LONG_EMAIL)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    assert sideways_scroll(page) <= 0

    link = re.search(r"https?://[^/\s]+(/account/verify/\S+/)", mail.outbox[-1].body)
    sign_in_by_form(page, LONG_EMAIL)
    resend = page.get_by_role("button", name="Send it again")
    expect(resend).to_be_visible()
    assert sideways_scroll(page) <= 0
    assert wider_than_their_box(page, ".banner, .card") == []
    box = resend.bounding_box()
    assert box is not None and box["height"] >= 24  # WCAG 2.5.8: a target to hit

    assert link is not None
    page.goto(link.group(1))
    confirm = page.get_by_role("button", name=f"Confirm {LONG_EMAIL}")
    expect(confirm).to_be_visible()
    assert sideways_scroll(page) <= 0
    assert wider_than_their_box(page, ".button") == []
    confirm.click()
    expect(page.get_by_text("Your email is confirmed.")).to_be_visible()


def test_a_key_named_in_a_sentence_keeps_its_dialogs_whole(page: Page, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    api_key_create(project=project, name=LONG_NAME, created_by=user)
    sign_in(page, "kim@example.com")
    for size in ({"width": 1280, "height": 900}, NARROW):
        page.set_viewport_size(size)
        for action in ("Suspend", "Roll", "Revoke"):
            page.goto(f"/projects/{project.slug}/settings/api-keys/")
            page.get_by_role("link", name=f"{action} {LONG_NAME}").click()
            expect(page.get_by_role("button", name=f"{action} “{LONG_NAME}”")).to_be_visible()
            assert wider_than_their_box(page, "dialog[open]") == [], (action, size)


def test_a_long_invited_address_stays_inside_the_members_page(page: Page, transactional_db):
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    user_sign_up(email=LONG_EMAIL, password=PASSWORD, name="Max", verified=True)
    sign_in(page, "kim@example.com")
    page.set_viewport_size(NARROW)
    page.goto(f"/projects/{project.slug}/settings/members/")
    page.get_by_label("Email address").fill(LONG_EMAIL)
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent")).to_be_visible()
    assert sideways_scroll(page) <= 0
    assert wider_than_their_box(page, "main .card, main .table-wrap, .message") == []


def test_a_long_address_stays_inside_the_overview_cards(page: Page, transactional_db):
    user_sign_up(email=LONG_EMAIL, password=PASSWORD, name="Max", verified=True)
    sign_in(page, LONG_EMAIL)
    expect(page.get_by_role("heading", name="Members' last sign-ins")).to_be_visible()
    for size in ({"width": 1280, "height": 900}, NARROW):
        page.set_viewport_size(size)
        assert sideways_scroll(page) <= 0
        assert wider_than_their_box(page, "main .card") == [], size


def test_a_long_client_token_context_and_the_key_search_hint_stay_readable(
    page: Page, transactional_db
):
    """At 1280 px the context column was squeezed to a few letters a line (the JSON ran
    down six lines), and the key search cut its own hint to "Name, notes or the start"."""
    from apikeys.services import client_token_create

    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="Production", created_by=user)
    context = {"user": "user-1", "plan": "enterprise-with-a-very-long-plan-name"}
    client_token_create(project=project, context=context, api_key=key)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/client-tokens/")
    box = page.locator("code.context-summary").bounding_box()
    assert box is not None and box["width"] >= 150

    page.goto(f"/projects/{project.slug}/settings/api-keys/")
    hint_fits = page.evaluate(
        """() => {
            const input = document.querySelector("#key-search");
            const style = getComputedStyle(input);
            const ruler = document.createElement("span");
            ruler.style.font = style.font;
            ruler.style.whiteSpace = "pre";
            ruler.textContent = input.placeholder;
            document.body.append(ruler);
            const needed = ruler.getBoundingClientRect().width
              + parseFloat(style.paddingLeft) + parseFloat(style.paddingRight);
            ruler.remove();
            return input.clientWidth >= needed;
        }"""
    )
    assert hint_fits


def test_the_resend_button_follows_the_banners_sentence(page: Page, transactional_db):
    """Under a sentence of a full line it sat a form label's height (28 px) lower."""
    user_sign_up(email=LONG_EMAIL, password=PASSWORD, name="Max")
    sign_in(page, LONG_EMAIL)
    expect(page.get_by_role("button", name="Send it again")).to_be_visible()
    gap = page.evaluate(
        """() => {
            const form = document.querySelector(".banner form");
            const text = Array.from(form.childNodes).find(n => n.nodeType === 3 && n.data.trim());
            const range = document.createRange();
            range.selectNodeContents(text);
            const bottom = Math.max(...Array.from(range.getClientRects()).map(r => r.bottom));
            return form.querySelector("button").getBoundingClientRect().top - bottom;
        }"""
    )
    assert gap < 16


def test_a_name_and_a_note_of_one_long_word_wrap_at_360_px_and_on_a_desktop(
    page: Page, transactional_db
):
    """A key named with 100 characters and no space (a pasted id) and a note of 500 (a
    pasted hash or URL): they wrap inside the key list's Name cell and the key's usage
    heading, and neither page scrolls sideways. Before, the name made the key list 915 px
    wider than the window at 1280, and the usage page's heading 1,466 px wider at 360."""
    user = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(user).get()
    key, _ = api_key_create(project=project, name="N" * 100, created_by=user, notes="x" * 500)
    sign_in(page, "kim@example.com")
    keys = f"/projects/{project.slug}/settings/api-keys/"
    for size in ({"width": 360, "height": 800}, {"width": 1280, "height": 900}):
        page.set_viewport_size(size)
        for path in (keys, f"{keys}{key.pk}/usage/"):
            page.goto(path)
            assert sideways_scroll(page) <= 0, (path, size)
            assert wider_than_their_box(page, "td, .key-notes, h1, h3") == [], (path, size)
