"""The client tokens a person's PATs minted in a project die with the membership they
were minted in: refused once the person leaves or is removed, and still refused if they
are added again (ClientToken.end_reason_at; the API's lookup compares the membership's
start with the token's). Their PATs act as them: they reach the project again once they
are a member again. What the project's API keys minted is the project's, and stays,
whoever made the key. No statement of the removal grows with how many were minted: a
member could otherwise mint so many that removing them timed out, again and again."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project, TotpDevice
from accounts.services import membership_add, membership_remove
from apikeys.models import ClientToken, TokenStatus
from apikeys.services import personal_token_create
from apikeys.views.client_tokens import effective_status
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api, statements_run

WHO_AM_I = "/client/token"
LEFT = "The person whose token minted this client token left the project."


@pytest.fixture
def lous_cli(lou) -> Api:
    _, secret = personal_token_create(user=lou, name="Lou's CLI")
    return Api(Client(), secret)


def mint(api: Api, project: Project | None = None) -> Api:
    """A client token minted by `api` (for `project`, which a PAT names), as a browser
    holding it calls the Client API."""
    headers = {"X-Project": project.slug} if project is not None else {}
    minted = assert_ok(api.post("/v1/client-tokens", {"context": {}}, headers=headers), 201)
    return Api(Client(), minted["token"])


@pytest.mark.parametrize("how", ["removed", "left"])
def test_the_client_tokens_a_members_pats_minted_end_with_their_membership(
    project, user, lou, lous_cli, api, make_key, how
):
    lous_browser = mint(lous_cli, project)
    elsewhere = mint(lous_cli, Project.objects.get(memberships__user=lou, name="Lou's project"))
    projects_browser = mint(api)
    lous_key = make_key(project, name="Lou's key", created_by=lou)[1]
    lous_keys_browser = mint(Api(Client(), lous_key))
    theirs = Membership.objects.get(project=project, user=lou)
    by = lou if how == "left" else user
    with statements_run() as statements:
        membership_remove(membership=theirs, by=by)

    assert statements  # seen: none of them is on client tokens
    assert not [sql for sql in statements if ClientToken._meta.db_table in sql]
    error = assert_error(lous_browser.get(WHO_AM_I), 401, "expired_api_key")
    assert (
        error["message"]
        == "This client token is no longer valid. Ask the app that gave it for a new one."
    )
    ended = ClientToken.objects.get(personal_token__user=lou, project=project)
    assert effective_status(ended) == (TokenStatus.REVOKED, LEFT)  # as the list shows it
    # Only that project's, only the person's: the project's keys' tokens stay, Lou's key's too.
    for browser in (elsewhere, projects_browser, lous_keys_browser):
        assert_ok(browser.get(WHO_AM_I))


def test_adding_the_person_again_does_not_bring_their_old_client_tokens_back(
    project, user, lou, lous_cli
):
    """Before, the tokens were only refused while Lou was not a member (the check on each
    call), and worked again for what was left of their lifetime once Lou was back."""
    browser = mint(lous_cli, project)
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=user)
    membership_add(project=project, user=lou, role="member", by=user)

    assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    ended = ClientToken.objects.get(personal_token__user=lou, project=project)
    assert effective_status(ended) == (TokenStatus.REVOKED, LEFT)
    # The PAT acts as Lou, a member again: it reaches the project, and mints anew.
    assert_ok(lous_cli.get("/v1/projects/current", headers={"X-Project": project.slug}))
    assert_ok(mint(lous_cli, project).get(WHO_AM_I))


def test_a_new_membership_dated_before_the_token_does_not_bring_it_back(
    project, user, lou, lous_cli
):
    """The clocks of two app instances may disagree: the membership made when Lou is added
    again can carry a time before the old token's. The token records the membership it
    was minted in, so no clock decides."""
    browser = mint(lous_cli, project)
    token = ClientToken.objects.get(personal_token__user=lou, project=project)
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=user)
    again = membership_add(project=project, user=lou, role="member", by=user)
    Membership.objects.filter(pk=again.pk).update(
        created_at=token.created_at - timedelta(minutes=5)
    )

    assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    ended = ClientToken.objects.select_related("personal_token").get(pk=token.pk)
    assert effective_status(ended) == (TokenStatus.REVOKED, LEFT)
    assert_ok(mint(lous_cli, project).get(WHO_AM_I))  # one minted now, in the new membership


def test_the_pages_remove_and_leave_end_them_too(client, signed_in, project, lou, lous_cli):
    removed = mint(lous_cli, project)
    theirs = Membership.objects.get(project=project, user=lou)
    signed_in.post(reverse("accounts:project_member_remove", args=[project.slug, theirs.pk]))
    assert_error(removed.get(WHO_AM_I), 401, "expired_api_key")

    Membership.objects.create(project=project, user=lou)
    left = mint(lous_cli, project)
    client.force_login(lou)
    client.post(reverse("accounts:project_leave", args=[project.slug]))
    assert_error(left.get(WHO_AM_I), 401, "expired_api_key")
    # ...and neither came back with the membership made in between.
    assert_error(removed.get(WHO_AM_I), 401, "expired_api_key")


def test_the_list_does_not_call_active_a_token_refused_for_its_minters_missing_second_factor(
    project, lou, lous_cli
):
    """Once the owners require two-factor authentication, the API refuses the client
    tokens minted by a member without a second factor (the statement reads their
    membership with the policy, api/lookup.py), while the Client tokens page listed them
    as active: the owners saw working tokens where every call was refused."""
    browser = mint(lous_cli, project)
    Project.objects.filter(pk=project.pk).update(require_two_factor=True)

    assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    refused = ClientToken.objects.get(personal_token__user=lou, project=project)
    assert effective_status(refused) == (
        TokenStatus.REVOKED,
        "The person whose token minted this client token has no second factor, which the "
        "project requires.",
    )
    # A second factor set up, it works again, and the list says so.
    TotpDevice.objects.create(user=lou, secret_encrypted="x", confirmed_at=timezone.now())
    assert_ok(browser.get(WHO_AM_I))
    refused = ClientToken.objects.get(pk=refused.pk)
    assert effective_status(refused) == (TokenStatus.ACTIVE, "")


def test_the_list_reads_the_minters_second_factor_with_the_tokens_not_one_by_one(
    signed_in, user, project, lou, lous_cli
):
    """Asked token by token (has_two_factor: the authenticator app, then the passkeys), a
    page of fifty tokens a PAT minted in a project that requires a second factor cost up
    to a hundred statements more on each load. They are read with the tokens."""
    for person in (user, lou):  # (the owner reads the page; Lou mints)
        TotpDevice.objects.create(user=person, secret_encrypted="x", confirmed_at=timezone.now())
    for _ in range(3):
        mint(lous_cli, project)
    Project.objects.filter(pk=project.pk).update(require_two_factor=True)

    with CaptureQueriesContext(connection) as captured:
        page = signed_in.get(reverse("apikeys:client_token_list", args=[project.slug]))

    assert page.status_code == 200
    assert "has no second factor" not in page.content.decode()
    reads = [q["sql"] for q in captured.captured_queries if TotpDevice._meta.db_table in q["sql"]]
    assert len(reads) <= 2  # the owner's own session check, and the page's one statement


def test_the_list_reads_the_minters_membership_with_the_tokens_not_one_by_one(
    signed_in, project, lou, lous_cli
):
    """Each client token a PAT minted is refused once its person leaves the membership it
    was minted in (ClientToken.end_reason_at). Asked token by token, a page of fifty such
    tokens cost fifty statements more on each load; they are read with the tokens, and the
    page still says which ended with the membership."""
    url = reverse("apikeys:client_token_list", args=[project.slug])
    kept = mint(lous_cli, project)

    def membership_reads() -> tuple[int, str]:
        with CaptureQueriesContext(connection) as captured:
            page = signed_in.get(url)
        assert page.status_code == 200
        table = Membership._meta.db_table
        return sum(table in q["sql"] for q in captured.captured_queries), page.content.decode()

    one, _ = membership_reads()
    for _ in range(4):
        mint(lous_cli, project)
    five, body = membership_reads()

    assert five == one
    assert LEFT not in body
    assert_ok(kept.get(WHO_AM_I))
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=lou)
    after, body = membership_reads()
    assert after == one
    assert body.count(LEFT) == 5
    assert_error(kept.get(WHO_AM_I), 401, "expired_api_key")
