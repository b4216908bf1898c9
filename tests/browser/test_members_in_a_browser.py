"""An owner of a large project works through its members page in a browser: the search
and the pager change the list in place (htmx) and the address with it, and an action on
the second page of a search comes back there."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

from accounts.models import Membership, Project, User
from accounts.services import user_sign_up
from tests.browser.signing_in import sign_in
from tests.conftest import PASSWORD


def test_an_owner_searches_pages_and_changes_a_role_without_losing_their_place(
    page: Page, live_server, transactional_db
):
    owner = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(owner).get()
    users = User.objects.bulk_create(User(email=f"m{n:02}@example.com") for n in range(60))
    Membership.objects.bulk_create(Membership(project=project, user=u) for u in users)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/members/")
    rows = page.locator("#member-list tbody tr[id^='member-']")
    expect(rows).to_have_count(50)
    expect(rows.first).to_contain_text("Kim")  # their own row, with Leave, first

    search = page.get_by_label("Search members")
    search.fill("M05")
    search.press("Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("m05@example.com")
    expect(page).to_have_url(re.compile(r"\?q=M05$"))
    expect(search).to_be_focused()  # the list changed, not the form

    search.fill("zzz")
    search.press("Enter")
    expect(page.locator("#member-list")).to_contain_text("No member’s name or email address")
    page.get_by_role("link", name="Show all members").click()
    expect(rows).to_have_count(50)
    expect(page).to_have_url(re.compile(r"/settings/members/$"))

    search.fill("@example.com")
    search.press("Enter")
    expect(page.locator("#member-list")).to_contain_text("61 members match “@example.com”")
    page.get_by_role("link", name="Next →").click()
    expect(page).to_have_url(re.compile(r"\?q=%40example.com&page=2$"))
    expect(rows).to_have_count(11)
    m55 = member_row(page, "m55@example.com")
    m55.get_by_label("Role of m55@example.com").select_option("owner")
    m55.get_by_role("button", name="Change role").click()

    expect(page.locator("#messages")).to_contain_text("m55@example.com is now owner.")
    expect(page).to_have_url(re.compile(r"\?q=%40example.com&page=2#messages$"))
    expect(rows).to_have_count(11)
    expect(page.get_by_label("Search members")).to_have_value("@example.com")


def member_row(page: Page, email: str) -> Locator:
    """A member's row (not the row saying an action's outcome, which names them too)."""
    return page.locator("#member-list tr[id^='member-']").filter(has_text=email)


def in_view_below_the_bar(page: Page, locator) -> bool:
    """The element is on screen whole, not under the sticky top bar."""
    box = locator.bounding_box()
    bar = page.locator("header").first.bounding_box()
    assert box is not None and bar is not None
    return box["y"] >= bar["y"] + bar["height"] and box["y"] + box["height"] <= 900


def test_an_action_far_down_the_list_comes_back_to_its_row_not_the_top(
    page: Page, live_server, transactional_db
):
    """A role changed, or a member removed, 40 rows down the page: the page came back at
    its top and the owner scrolled down again to find the row and see the change. Then it
    came back to the row, but said what happened at the top, off screen: what was done is
    said in view, by the row."""
    owner = user_sign_up(email="kim@example.com", password=PASSWORD, name="Kim", verified=True)
    project = Project.objects.for_user(owner).get()
    users = User.objects.bulk_create(User(email=f"m{n:02}@example.com") for n in range(60))
    Membership.objects.bulk_create(Membership(project=project, user=u) for u in users)
    sign_in(page, "kim@example.com", at=f"/projects/{project.slug}/settings/members/")

    m40 = member_row(page, "m40@example.com")
    m40.get_by_label("Role of m40@example.com").select_option("owner")
    m40.get_by_role("button", name="Change role").click()
    expect(m40.get_by_label("Role of m40@example.com")).to_have_value("owner")
    assert page.evaluate("window.scrollY") > 0
    assert in_view_below_the_bar(page, m40)
    expect(page.locator("#messages")).to_have_text("m40@example.com is now owner.")
    assert in_view_below_the_bar(page, page.locator("#messages"))

    m45 = member_row(page, "m45@example.com")
    m45.get_by_role("button", name="Remove").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.locator("#messages")).to_contain_text("m45@example.com was removed")
    assert in_view_below_the_bar(page, page.locator("#messages"))
    # m46 stands where m45 stood.
    assert in_view_below_the_bar(page, member_row(page, "m46@example.com"))
