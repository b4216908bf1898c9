"""The members page of a large project: its pager, its search, and an owner working
through it. Each action (a role, a removal, a hand-over, an invitation sent, refused or
withdrawn) comes back to the search and page it was sent from."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, User
from accounts.views import members as members_views


@pytest.fixture
def pages_of_three(monkeypatch, project):
    """Pages of 3, and 9 members beside the owner (ada@example.com, first by address):
    pages 1 to 3 hold 3 each, page 4 holds m08 alone."""
    monkeypatch.setattr(members_views, "MEMBERS_PAGE_SIZE", 3)
    users = User.objects.bulk_create(User(email=f"m{n:02}@example.com") for n in range(9))
    Membership.objects.bulk_create(Membership(project=project, user=u) for u in users)


def members_url(project) -> str:
    return reverse("accounts:project_members", args=[project.slug])


def membership_of(project, email: str) -> Membership:
    return Membership.objects.get(project=project, user__email=email)


def listed(response) -> list[str]:
    """The names (or, for someone without one, the addresses) of the members' rows."""
    return re.findall(
        r"<tr[^>]*>\s*<td[^>]*><strong><bdi>([^<]+)</bdi></strong>", response.content.decode()
    )


def place(response) -> str:
    """The search and page an action's answer leads to (its address, less the row)."""
    return str(response["Location"]).partition("#")[0]


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
    assert place(response) == members_url(project) + "?page=2"
    assert signed_in.get(response["Location"]).status_code == 200


def outcome(response) -> tuple[int | None, str, int | None]:
    """Where the page an action led to says its outcome (#messages, the page's one live
    region): the member rows just above and below it (their ids), and what it says."""
    html = response.content.decode()
    assert html.count('id="messages"') == 1
    at = html.index('id="messages"')
    assert 'role="status"' in html[html.rindex("<", 0, at) : html.index(">", at)]
    rows = [(m.start(), int(m[1])) for m in re.finditer(r'<tr id="member-(\d+)"', html)]
    above = [pk for where, pk in rows if where < at]
    below = [pk for where, pk in rows if where > at]
    inside = html[html.index(">", at) + 1 : html.index("</div>", at)]
    said = unescape(re.sub(r"<[^>]+>", " ", inside))
    return (above[-1] if above else None), " ".join(said.split()), (below[0] if below else None)


@pytest.mark.parametrize("action", ["role", "transfer"])
def test_an_action_on_a_member_says_its_outcome_just_above_their_row(
    signed_in, project, pages_of_three, action
):
    """A role changed or the project handed over from the 40th row of a page came back to
    that row, but said so at the page's top, off screen: the owner saw the row and no word
    of what happened. The outcome now stands just above the row, and the answer leads to
    it (#messages, below the sticky bar), the row beneath."""
    url, fields = ACTIONS[action]
    response = signed_in.post(url(project), {**fields, "page": "2"})
    m02, m03 = (membership_of(project, f"{name}@example.com") for name in ("m02", "m03"))
    assert response["Location"] == members_url(project) + "?page=2#messages"
    above, said, below = outcome(signed_in.get(response["Location"]))
    assert (above, below) == (m02.pk, m03.pk)
    assert "m03@example.com is now" in said


def test_a_removal_says_its_outcome_where_the_row_stood(signed_in, project, pages_of_three):
    """Page 2 held m02, m03, m04: with m03 removed it holds m02, m04, m05, and the outcome
    stands between m02 and m04, where m03 stood. Past the last row (page 4's only one, m08),
    the answer is page 3 and the outcome follows its last row, m07, not its first (the
    page's top again)."""
    for removed, page, then, around in (
        ("m03", "2", "?page=2", ("m02", "m04")),
        ("m08", "4", "?page=3", ("m07", None)),
    ):
        gone = membership_of(project, f"{removed}@example.com")
        url = reverse("accounts:project_member_remove", args=[project.slug, gone.pk])
        response = signed_in.post(url, {"page": page})
        assert response["Location"] == members_url(project) + then + "#messages"
        above, said, below = outcome(signed_in.get(response["Location"]))
        assert (above, below) == tuple(
            name and membership_of(project, f"{name}@example.com").pk for name in around
        )
        assert said == f"{removed}@example.com was removed from the project."


def test_an_invitation_sent_or_withdrawn_says_so_at_the_invitations(
    signed_in, project, pages_of_three
):
    """The invitations are below the members, 50 rows down: the answer leads there, and
    the outcome stands under their heading."""
    for action, words in (("invite", "Invitation sent to"), ("withdraw", "was withdrawn")):
        url, fields = ACTIONS[action]
        response = signed_in.post(url(project), {**fields, "page": "2"})
        assert response["Location"] == members_url(project) + "?page=2#messages"
        answer = signed_in.get(response["Location"])
        _, said, _ = outcome(answer)
        html = answer.content.decode()
        assert words in said
        assert re.search(r'<h3 id="invitations">Invitations</h3>\s*<div id="messages"', html)


def test_an_outcome_whose_row_is_not_on_the_page_is_said_at_the_top(
    signed_in, project, pages_of_three
):
    """A role changed from a search that no longer finds the member (or a page gone):
    there is no row to say it by, and the page's top says it, as before."""
    role = on_member("accounts:project_member_role")(project)
    response = signed_in.post(role, {"role": "owner", "page": "2", "q": "m03"})
    page = signed_in.get(members_url(project)).content.decode()  # page 1: no m03
    assert page.count('id="messages"') == 1
    assert page.index('id="messages"') < page.index('id="members"')
    assert "m03@example.com is now owner." in page
    assert response.status_code == 302


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
    assert place(response) == members_url(project) + "?page=3"
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
    assert re.fullmatch(re.escape(members_url(project)) + r"(\?page=[234])?", place(response))
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


# -- Search ---------------------------------------------------------------------------------


def search(client, project, q: str, **more):
    return client.get(members_url(project), {"q": q, **more})


def test_a_member_is_found_by_name_or_address_in_any_case(signed_in, project, make_user):
    make_user(email="grace@example.com", name="Grace Hopper")
    make_user(email="GRACE.H@Example.org", name="")  # not a member: never listed
    Membership.objects.create(project=project, user=User.objects.get(email="grace@example.com"))
    assert listed(search(signed_in, project, "hopper")) == ["Grace Hopper"]
    assert listed(search(signed_in, project, "GRACE@EXAMPLE")) == ["Grace Hopper"]
    assert listed(search(signed_in, project, "  lovelace ")) == ["Ada Lovelace"]
    assert listed(search(signed_in, project, "example.com")) == ["Ada Lovelace", "Grace Hopper"]


@pytest.mark.parametrize(
    ("name", "typed"),
    [
        ("Jürgen Öztürk", "öztürk"),
        ("Jürgen Öztürk", "ÖZTÜRK"),
        ("jürgen öztürk", "Öztürk"),
        ("Hans Großmann", "großmann"),
        ("Hans Großmann", "GROSSMANN"),  # ß is SS in capitals
        ("HANS GROSSMANN", "Großmann"),
        ("Søren Ærø", "SØREN ÆRØ"),
        ("Ὀδυσσεύς", "ὈΔΥΣΣΕΎΣ"),  # final sigma
        ("Zoë", "zoe\u0308"),  # the same letter, typed as e and a combining diaeresis
    ],
)
def test_search_ignores_case_beyond_ascii_on_every_database(
    signed_in, project, make_user, name, typed
):
    """SQLite's LIKE and UPPER() fold ASCII letters alone: searched in SQL, "öztürk" would
    not find Öztürk there, while PostgreSQL found it."""
    member = make_user(email="someone@example.com", name=name)
    Membership.objects.create(project=project, user=member)
    assert listed(search(signed_in, project, typed)) == [name]


def test_search_and_pager_work_together(signed_in, project, pages_of_three, make_user):
    Membership.objects.create(project=project, user=make_user(email="other@example.org"))
    first = search(signed_in, project, "m0")
    assert listed(first) == ["m00@example.com", "m01@example.com", "m02@example.com"]
    page = first.content.decode()
    assert "9 members match “m0”" in page
    assert "1–3 of 9 members" in page
    [next_page] = re.findall(r'href="([^"]*)"[^>]*rel="next"', page)
    second = signed_in.get(unescape(next_page))
    assert listed(second) == ["m03@example.com", "m04@example.com", "m05@example.com"]
    # The forms on it carry the search with the page.
    assert '<input type="hidden" name="q" value="m0">' in second.content.decode()


def test_a_search_that_finds_nobody_says_so_and_how_to_see_everyone(signed_in, project):
    page = search(signed_in, project, "nobody-by-this-name").content.decode()
    assert "No member’s name or email address contains “nobody-by-this-name”." in page
    assert re.search(
        rf'<a href="{re.escape(members_url(project))}"[^>]*>Show all members</a>', page
    )


def test_an_action_comes_back_to_the_search_and_page_it_was_sent_from(
    signed_in, project, pages_of_three
):
    role = on_member("accounts:project_member_role")(project)
    response = signed_in.post(role, {"role": "owner", "q": "M0", "page": "2"})
    assert place(response) == members_url(project) + "?q=M0&page=2"
    # A removal that empties the last page of what was found: the new last page of it.
    m08 = membership_of(project, "m08@example.com")
    remove = reverse("accounts:project_member_remove", args=[project.slug, m08.pk])
    response = signed_in.post(remove, {"q": "@EXAMPLE.COM", "page": "4"})
    assert place(response) == members_url(project) + "?q=%40EXAMPLE.COM&page=3"


def test_a_token_pasted_into_the_search_is_not_kept_in_the_address(signed_in, project, api_key):
    _, secret = api_key
    response = search(signed_in, project, f" {secret} ", page="2")
    assert response.status_code == 303
    assert response["Location"] == members_url(project) + "?page=2"
    page = signed_in.get(response["Location"]).content.decode()
    assert secret not in page
    assert "A secret token was pasted into a filter here" in page
    # Carried by a form, it is not written into the address it comes back to.
    role = reverse(
        "accounts:project_member_role",
        args=[project.slug, membership_of(project, "ada@example.com").pk],
    )
    response = signed_in.post(role, {"role": "owner", "q": secret})
    assert secret not in response["Location"]


@pytest.mark.parametrize(
    "odd", ["\x00", "a\x00b", "²", "%", "_", "\\", "'", "x" * 5000, "😀", "\u202e", " "]
)
def test_odd_search_text_is_searched_for_or_ignored(signed_in, project, odd):
    response = search(signed_in, project, odd)
    assert response.status_code == 200


def test_like_wildcards_are_letters_in_a_search(signed_in, project, make_user):
    Membership.objects.create(project=project, user=make_user(email="a_b@example.com"))
    Membership.objects.create(project=project, user=make_user(email="axb@example.com"))
    assert listed(search(signed_in, project, "a_b")) == ["a_b@example.com"]
    assert listed(search(signed_in, project, "%")) == []


def test_htmx_gets_the_list_alone_for_a_search_or_a_page(htmx, project, pages_of_three):
    response = htmx.get(members_url(project), {"q": "m0"}, headers={"HX-Target": "member-list"})
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="member-list"')
    assert "<html" not in content and 'name="q"' not in content.split(">", 1)[0]
    assert listed(response) == ["m00@example.com", "m01@example.com", "m02@example.com"]
    assert "HX-Request" in response["Vary"]
    # Restoring a page from history needs the whole page.
    whole = htmx.get(
        members_url(project), {"q": "m0"}, headers={"HX-History-Restore-Request": "true"}
    )
    assert "<html" in whole.content.decode()
