"""The client tokens a person's PATs minted in a project are revoked outright when they
leave it or are removed from it (apikeys.services.client_tokens_revoke_of_member, on
accounts' membership_ended), so adding them again does not bring those tokens back. Their
PATs act as them: they reach the project again once they are a member again. What the
project's API keys minted is the project's, and stays, whoever made the key."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Project
from accounts.services import membership_add, membership_remove
from apikeys.models import ClientToken
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api

WHO_AM_I = "/client/token"


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
def test_the_client_tokens_a_members_pats_minted_are_revoked_with_their_membership(
    project, user, lou, lous_cli, api, make_key, how
):
    lous_browser = mint(lous_cli, project)
    elsewhere = mint(lous_cli, Project.objects.get(memberships__user=lou, name="Lou's project"))
    projects_browser = mint(api)
    lous_key = make_key(project, name="Lou's key", created_by=lou)[1]
    lous_keys_browser = mint(Api(Client(), lous_key))
    theirs = Membership.objects.get(project=project, user=lou)
    by = lou if how == "left" else user
    membership_remove(membership=theirs, by=by)

    error = assert_error(lous_browser.get(WHO_AM_I), 401, "expired_api_key")
    assert error["message"].startswith("This client token was revoked on ")
    revoked = ClientToken.objects.get(personal_token__user=lou, project=project)
    assert revoked.revoked_at is not None and revoked.revoked_by == by
    # Only that project's, only the person's: the project's keys' tokens stay, Lou's key's too.
    for browser in (elsewhere, projects_browser, lous_keys_browser):
        assert_ok(browser.get(WHO_AM_I))
    [event] = AuditEvent.objects.filter(action="client_token.revoked_all_of_member")
    assert event.project == project and event.actor == by
    assert event.target_label == "lou@example.com" and event.metadata == {"count": 1}
    assert event.target_type == "membership" and event.target_id == str(theirs.pk)


def test_adding_the_person_again_does_not_bring_their_old_client_tokens_back(
    project, user, lou, lous_cli
):
    """Before, the tokens were only refused while Lou was not a member (the check on each
    call), and worked again for what was left of their lifetime once Lou was back."""
    browser = mint(lous_cli, project)
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=user)
    membership_add(project=project, user=lou, role="member", by=user)

    assert_error(browser.get(WHO_AM_I), 401, "expired_api_key")
    # The PAT acts as Lou, a member again: it reaches the project, and mints anew.
    assert_ok(lous_cli.get("/v1/projects/current", headers={"X-Project": project.slug}))
    assert_ok(mint(lous_cli, project).get(WHO_AM_I))


def test_the_pages_remove_and_leave_revoke_them_too(client, signed_in, project, lou, lous_cli):
    removed = mint(lous_cli, project)
    theirs = Membership.objects.get(project=project, user=lou)
    signed_in.post(reverse("accounts:project_member_remove", args=[project.slug, theirs.pk]))
    assert_error(removed.get(WHO_AM_I), 401, "expired_api_key")

    Membership.objects.create(project=project, user=lou)
    left = mint(lous_cli, project)
    client.force_login(lou)
    client.post(reverse("accounts:project_leave", args=[project.slug]))
    assert_error(left.get(WHO_AM_I), 401, "expired_api_key")
    assert ClientToken.objects.filter(project=project, revoked_at__isnull=False).count() == 2


def test_a_member_who_minted_nothing_leaves_no_revocation_event(project, user, lou):
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=user)
    assert not AuditEvent.objects.filter(action="client_token.revoked_all_of_member").exists()
    assert AuditEvent.objects.filter(action="membership.removed").exists()
