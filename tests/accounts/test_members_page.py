"""The members page of a large project: its pager, and an owner working through it. Each
action (a role, a removal, a hand-over, an invitation sent, refused or withdrawn) comes
back to the page it was sent from."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import views as accounts_views
from accounts.models import Invitation, Membership, User


@pytest.fixture
def pages_of_three(monkeypatch, project):
    """Pages of 3, and 9 members beside the owner (ada@example.com, first by address):
    pages 1 to 3 hold 3 each, page 4 holds m08 alone."""
    monkeypatch.setattr(accounts_views, "MEMBERS_PAGE_SIZE", 3)
    users = User.objects.bulk_create(User(email=f"m{n:02}@example.com") for n in range(9))
    Membership.objects.bulk_create(Membership(project=project, user=u) for u in users)


def members_url(project) -> str:
    return reverse("accounts:project_members", args=[project.slug])


def membership_of(project, email: str) -> Membership:
    return Membership.objects.get(project=project, user__email=email)


def listed(response) -> list[str]:
    """The names (or, for someone without one, the addresses) of the members' rows."""
    return re.findall(r"<tr[^>]*>\s*<td[^>]*><strong>([^<]+)</strong>", response.content.decode())


def on_member(name: str):
    def action(project) -> str:
        membership = membership_of(project, "m03@example.com")  # on page 2
        return reverse(name, args=[project.slug, membership.pk])

    return action


def withdrawal(project) -> str:
    invitation = Invitation.objects.create(
        project=project,
        email="guest@example.com",
        role="member",
        token_hash="i" * 64,
        expires_at=timezone.now() + timedelta(days=7),
    )
    return reverse("accounts:project_invitation_revoke", args=[project.slug, invitation.pk])


ACTIONS = {
    "role": (on_member("accounts:project_member_role"), {"role": "owner"}),
    "remove": (on_member("accounts:project_member_remove"), {}),
    "transfer": (on_member("accounts:project_transfer"), {}),
    "invite": (
        lambda project: reverse("accounts:project_invitation_send", args=[project.slug]),
        {"email": "newcomer@example.com", "role": "member"},
    ),
    "withdraw": (withdrawal, {}),
}


@pytest.mark.parametrize("action", ACTIONS)
def test_each_action_comes_back_to_the_page_it_was_sent_from(
    signed_in, project, pages_of_three, action
):
    url, fields = ACTIONS[action]
    response = signed_in.post(url(project), {**fields, "page": "2"})
    assert response.status_code == 302
    assert response["Location"] == members_url(project) + "?page=2"
    assert signed_in.get(response["Location"]).status_code == 200


def test_every_form_of_a_page_carries_its_number(signed_in, project, pages_of_three):
    page = signed_in.get(members_url(project), {"page": "2"}).content.decode()
    section = page[page.index('id="members"') :]
    forms = re.findall(r'<form method="post".*?</form>', section, re.S)
    # Role, hand-over and removal for each of 3 members, and the invitation form.
    assert len(forms) == 3 * 3 + 1
    for form in forms:
        assert '<input type="hidden" name="page" value="2">' in form


def test_a_removal_that_empties_the_last_page_comes_back_to_the_new_last_page(
    signed_in, project, pages_of_three
):
    alone = membership_of(project, "m08@example.com")
    url = reverse("accounts:project_member_remove", args=[project.slug, alone.pk])
    response = signed_in.post(url, {"page": "4"})
    assert response["Location"] == members_url(project) + "?page=3"
    assert listed(signed_in.get(response["Location"])) == [
        "m05@example.com",
        "m06@example.com",
        "m07@example.com",
    ]


def test_a_refused_invitation_shows_the_page_it_was_sent_from(signed_in, project, pages_of_three):
    response = signed_in.post(
        reverse("accounts:project_invitation_send", args=[project.slug]),
        {"email": "not an address", "role": "member", "page": "2"},
    )
    assert response.status_code == 422
    assert listed(response) == ["m02@example.com", "m03@example.com", "m04@example.com"]
    assert "4–6 of 10 members" in response.content.decode()


ODD_PAGES = [
    "²",
    "٣",
    "-1",
    "0",
    "2.0",
    " 2",
    "99999999999999999999",
    "9" * 5000,
    "\x00",
    "2\x00",
    "",
    "reminix_sk_" + "a" * 36,
]


@pytest.mark.parametrize("odd", ODD_PAGES)
def test_an_odd_page_number_is_a_page_of_the_list(signed_in, project, pages_of_three, odd):
    shown = signed_in.get(members_url(project), {"page": odd})
    assert shown.status_code in (200, 303)
    role = reverse(
        "accounts:project_member_role",
        args=[project.slug, membership_of(project, "m03@example.com").pk],
    )
    response = signed_in.post(role, {"role": "owner", "page": odd})
    assert response.status_code == 302
    assert re.fullmatch(re.escape(members_url(project)) + r"(\?page=[234])?", response["Location"])
    assert signed_in.get(response["Location"]).status_code == 200


def test_your_own_row_comes_first_wherever_your_address_sorts(client, project, pages_of_three):
    """The row with Leave is on the first page, first: a member whose address sorts to
    page 4 found it only by paging there."""
    zoe = User.objects.create_user(email="zoe@example.com", password="x" * 20)
    Membership.objects.create(project=project, user=zoe)
    client.force_login(zoe)
    first = client.get(members_url(project))
    assert listed(first) == ["zoe@example.com", "Ada Lovelace", "m00@example.com"]
    assert "Leave project" in first.content.decode()
    assert "1–3 of 11 members" in first.content.decode()
    # The others follow by address, each listed once.
    pages = [listed(client.get(members_url(project), {"page": n})) for n in (2, 3, 4)]
    assert pages == [
        ["m01@example.com", "m02@example.com", "m03@example.com"],
        ["m04@example.com", "m05@example.com", "m06@example.com"],
        ["m07@example.com", "m08@example.com"],
    ]
