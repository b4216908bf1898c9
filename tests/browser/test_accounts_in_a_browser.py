import re

from django.core import mail
from playwright.sync_api import Page, expect

from accounts.models import Project, User
from accounts.services import user_sign_up
from tests.conftest import PASSWORD


def sign_up(page: Page, email: str, name: str) -> None:
    page.goto("/account/signup/")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()


def confirm_and_sign_in(page: Page, email: str) -> None:
    """Open the link the sign-up emailed, confirm, and sign in."""
    expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
    sent = [m for m in mail.outbox if m.to == [email]][-1]
    page.goto(re.search(r"https?://[^/\s]+(/account/verify/\S+/)", sent.body).group(1))
    page.get_by_role("button", name=f"Confirm {email}").click()
    expect(page.get_by_text("Your email is confirmed.")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_sign_up_sign_out_sign_in_and_switch_project(page: Page, transactional_db):
    sign_up(page, "lin@example.com", "Lin Wei")
    confirm_and_sign_in(page, "lin@example.com")
    expect(page.get_by_role("heading", name="Lin's project")).to_be_visible()
    assert User.objects.get(email="lin@example.com").email_verified

    page.get_by_label("Account menu").click()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.get_by_label("Email").fill("lin@example.com")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("don't match an account")).to_be_visible()

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Lin's project")).to_be_visible()

    page.get_by_label("Switch project").click()
    page.get_by_role("link", name="+ New project").click()
    page.get_by_label("Project name").fill("Support bot")
    page.get_by_role("button", name="Create project").click()
    expect(page.get_by_role("heading", name="Support bot")).to_be_visible()
    assert Project.objects.filter(name="Support bot", memberships__user__email="lin@example.com")

    page.get_by_label("Switch project").click()
    page.get_by_role("link", name="Lin's project").click()
    expect(page.get_by_role("heading", name="Lin's project")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/projects/lins-project[^/]*/$"))


def test_the_dashboard_is_usable_at_360_pixels(page: Page, transactional_db):
    page.set_viewport_size({"width": 360, "height": 740})
    sign_up(page, "narrow@example.com", "Nora")
    confirm_and_sign_in(page, "narrow@example.com")
    expect(page.get_by_role("heading", name="Nora's project")).to_be_visible()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    page.get_by_role("link", name="Settings", exact=True).click()
    expect(page.get_by_label("Project name")).to_be_visible()


def test_the_sign_in_page_names_reminix_at_phone_widths_too(page: Page, live_server):
    """The top bar hides the name beside the logo below 640 px, for room; the sign-in and
    sign-up pages, which have room, lost it too: a phone showed a lone "R" above "Sign in"."""
    for width in (360, 1280):
        page.set_viewport_size({"width": width, "height": 740})
        for path in ("/account/login/", "/account/signup/"):
            page.goto(path)
            expect(page.locator(".auth-brand")).to_contain_text("Reminix")
            expect(page.locator(".auth-brand span")).to_be_visible()


def test_an_owner_invites_a_newcomer_who_signs_up_from_the_link_and_joins(
    page: Page, transactional_db
):
    sign_up(page, "ada@example.com", "Ada")
    confirm_and_sign_in(page, "ada@example.com")  # inviting waits for a confirmed address
    page.get_by_role("link", name="Settings", exact=True).click()
    page.get_by_role("link", name="Members").click()
    page.get_by_label("Email address").fill("kai@example.com")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to kai@example.com")).to_be_visible()
    expect(
        page.get_by_role("button", name="Withdraw the invitation to kai@example.com")
    ).to_be_visible()
    [message] = [m for m in mail.outbox if m.to == ["kai@example.com"]]
    path = re.search(r"/invitations/reminix_inv_\w+/", message.body)
    assert path is not None

    page.get_by_label("Account menu").click()
    page.get_by_role("button", name="Sign out").click()
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(path.group(0))
    expect(page.get_by_role("heading", name="Join Ada's project")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Your name").fill("Kai")
    page.get_by_label("Email").fill("kai@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.get_by_role("button", name="Accept and join").click()
    expect(page.get_by_text("You joined Ada's project")).to_be_visible()
    page.goto(page.url + "settings/members/")
    expect(page.get_by_role("button", name="Leave project")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0


def test_an_owner_deletes_a_project_by_typing_its_name(page: Page, transactional_db):
    user_sign_up(email="dee@example.com", password=PASSWORD, name="Dee", verified=True)
    page.goto("/account/login/")
    page.get_by_label("Email").fill("dee@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Settings", exact=True).click()
    confirm = page.get_by_label("Type “Dee's project” to confirm")
    delete = page.get_by_role("button", name="Delete this project")
    dialog = page.get_by_role("dialog")

    confirm.fill("Dees project")
    delete.click()
    dialog.get_by_role("button", name="Delete this project").click()
    expect(page.get_by_text("type “Dee's project” exactly")).to_be_visible()

    confirm.fill("Dee's project")
    delete.click()
    expect(dialog).to_contain_text("Every API key and client token of it stops working now")
    page.keyboard.press("Escape")  # changes nothing
    expect(dialog).to_have_count(0)
    assert Project.objects.get(name="Dee's project").deleted_at is None

    delete.click()
    dialog.get_by_role("button", name="Delete this project").click()
    expect(page.get_by_role("heading", name="New project")).to_be_visible()
    expect(page.get_by_text("The project “Dee's project” is deleted")).to_be_visible()
    assert Project.objects.get(name="Dee's project").deleted_at is not None


def test_a_reset_link_opened_from_the_mail_sets_a_new_password(page: Page, transactional_db):
    """The link's token waits in a cookie of its own, for the set-password page alone
    (accounts/views/password.py): Chromium keeps it across the link's redirect and sends it with
    the form."""
    user_sign_up(email="mei@example.com", password=PASSWORD, name="Mei", verified=True)
    page.goto("/account/password/reset/")
    page.get_by_label("Email").fill("mei@example.com")
    page.get_by_role("button", name="Send reset link").click()
    sent = [m for m in mail.outbox if m.to == ["mei@example.com"]][-1]
    page.goto(re.search(r"https?://[^/\s]+(/account/password/reset/\S+/)", sent.body).group(1))
    page.wait_for_url("**/set-password/")
    new_password = "a brand new passphrase 42"
    page.get_by_label("New password", exact=True).fill(new_password)
    page.get_by_label("New password confirmation").fill(new_password)
    page.get_by_role("button", name="Set password").click()
    expect(page.get_by_text("Your password is reset.")).to_be_visible()
    assert "password_reset" not in {c["name"] for c in page.context.cookies()}
    page.get_by_label("Email").fill("mei@example.com")
    page.get_by_label("Password").fill(new_password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Mei's project")).to_be_visible()
