"""Personal access tokens on /v1: they act as their user, in the project X-Project names."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Membership, Project
from accounts.services import membership_remove
from api.authentication import CLIENT_TOKEN_ENDED
from apikeys.models import PersonalAccessToken
from apikeys.services import personal_token_create
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api
from usage.models import UsageRecord


@pytest.fixture
def pat(user):
    return personal_token_create(user=user, name="CLI")


@pytest.fixture
def cli(pat) -> Api:
    return Api(Client(), pat[1])


def test_a_pat_with_x_project_acts_in_that_project(cli, project):
    answer = assert_ok(cli.get("/v1/projects/current", headers={"X-Project": project.slug}))
    assert answer["slug"] == project.slug
    agents = assert_ok(cli.get("/v1/agents", headers={"X-Project": project.slug}))
    assert [a["name"] for a in agents["data"]] == ["my-agent"]
    invoked = cli.post(
        "/v1/agents/my-agent/invoke", {"prompt": "hi"}, headers={"X-Project": project.slug}
    )
    assert assert_ok(invoked)["output"] == "hi"


def test_a_pat_without_x_project_is_told_to_name_one(cli):
    error = assert_error(cli.get("/v1/agents"), 400, "missing_required_field")
    assert "X-Project" in error["message"]


def test_a_project_the_user_is_not_a_member_of_is_403(cli, make_user):
    foreign = Project.objects.for_user(make_user(email="other@example.com")).get()
    for named in (foreign.slug, "no-such-project"):
        assert_error(
            cli.get("/v1/agents", headers={"X-Project": named}), 403, "insufficient_permissions"
        )


def test_leaving_a_project_takes_it_away_from_the_pat_at_once(pat, make_user):
    owner = make_user(email="owner@example.com")
    shared = Project.objects.for_user(owner).get()
    member = pat[0].user
    membership = Membership.objects.create(project=shared, user=member)
    cli = Api(Client(), pat[1])
    assert_ok(cli.get("/v1/agents", headers={"X-Project": shared.slug}))
    membership_remove(membership=membership, by=owner)
    assert_error(
        cli.get("/v1/agents", headers={"X-Project": shared.slug}), 403, "insufficient_permissions"
    )


def test_a_pat_limited_to_some_projects_reaches_only_those(user, project, make_project):
    other = make_project(owner=user, name="Other")
    _, token = personal_token_create(user=user, name="Narrow", projects=[project])
    cli = Api(Client(), token)
    assert_ok(cli.get("/v1/agents", headers={"X-Project": project.slug}))
    error = assert_error(
        cli.get("/v1/agents", headers={"X-Project": other.slug}), 403, "insufficient_permissions"
    )
    assert "not allowed" in error["message"]


def test_a_pat_without_a_permission_is_refused_that_action(user, project):
    _, token = personal_token_create(user=user, name="Reader", permissions=["read"])
    cli = Api(Client(), token)
    headers = {"X-Project": project.slug}
    assert_ok(cli.get("/v1/agents", headers=headers))
    response = cli.post("/v1/agents/my-agent/invoke", {"prompt": "x"}, headers=headers)
    assert "agents" in assert_error(response, 403, "insufficient_permissions")["message"]


def test_an_expired_pat_is_refused(cli, pat, project):
    PersonalAccessToken.objects.filter(pk=pat[0].pk).update(
        expires_at=timezone.now() - datetime.timedelta(minutes=1)
    )
    error = assert_error(
        cli.get("/v1/agents", headers={"X-Project": project.slug}), 401, "expired_api_key"
    )
    assert "expired" in error["message"]


def test_a_revoked_pat_is_refused(cli, pat, project):
    PersonalAccessToken.objects.filter(pk=pat[0].pk).update(revoked_at=timezone.now())
    error = assert_error(cli.get("/v1/user/me"), 401, "expired_api_key")
    assert "revoked" in error["message"]


def test_a_password_change_does_not_revoke_pats(cli, pat, project):
    user = pat[0].user
    user.set_password("a different long passphrase")
    user.save()
    assert_ok(cli.get("/v1/agents", headers={"X-Project": project.slug}))


def test_user_me_answers_the_user_and_the_projects_the_token_reaches(
    cli, user, project, make_project
):
    second = make_project(owner=user, name="Zeta")
    answer = assert_ok(cli.get("/v1/user/me"))
    assert answer["email"] == user.email and answer["name"] == user.name
    assert [p["slug"] for p in answer["projects"]] == [project.slug, second.slug]


def test_user_me_is_only_for_pats(api):
    assert_error(api.get("/v1/user/me"), 403, "insufficient_permissions")


def test_a_pat_mints_client_tokens_for_a_named_project(cli, project):
    answer = assert_ok(
        cli.post("/v1/client-tokens", {"context": {"a": 1}}, headers={"X-Project": project.slug}),
        201,
    )
    info = assert_ok(Api(Client(), answer["token"]).get("/client/token"))
    assert info["projectId"] == project.slug


def test_a_client_token_minted_by_a_pat_dies_when_its_user_leaves(pat, make_user):
    owner = make_user(email="owner@example.com")
    shared = Project.objects.for_user(owner).get()
    membership = Membership.objects.create(project=shared, user=pat[0].user)
    minted = assert_ok(
        Api(Client(), pat[1]).post(
            "/v1/client-tokens", {"context": {}}, headers={"X-Project": shared.slug}
        ),
        201,
    )
    browser = Api(Client(), minted["token"])
    assert_ok(browser.get("/client/token"))
    membership_remove(membership=membership, by=owner)
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_pat_calls_are_logged_and_mark_last_used(cli, pat, project):
    cli.get("/v1/agents", headers={"X-Project": project.slug, "User-Agent": "reminix-cli/1.0"})
    row = UsageRecord.objects.get(personal_token=pat[0])
    assert (row.project, row.token_kind, row.user_agent) == (
        project,
        "personal_access_token",
        "reminix-cli/1.0",
    )
    pat[0].refresh_from_db()
    assert pat[0].last_used_at is not None and pat[0].last_used_ip == "127.0.0.1"


def test_a_deactivated_users_pat_is_refused(cli, pat, project):
    user = pat[0].user
    user.is_active = False
    user.save(update_fields=["is_active"])
    error = assert_error(
        cli.get("/v1/agents", headers={"X-Project": project.slug}), 401, "expired_api_key"
    )
    assert "deactivated" in error["message"]


def test_a_client_token_dies_with_the_pat_that_minted_it(cli, pat, project):
    minted = assert_ok(
        cli.post("/v1/client-tokens", {"context": {}}, headers={"X-Project": project.slug}), 201
    )
    browser = Api(Client(), minted["token"])
    assert_ok(browser.get("/client/token"))
    PersonalAccessToken.objects.filter(pk=pat[0].pk).update(revoked_at=timezone.now())
    error = assert_error(browser.get("/client/token"), 401, "expired_api_key")
    assert error["message"] == CLIENT_TOKEN_ENDED


def test_a_client_token_minted_by_a_since_deactivated_user_is_refused(cli, pat, project):
    minted = assert_ok(
        cli.post("/v1/client-tokens", {"context": {}}, headers={"X-Project": project.slug}), 201
    )
    user = pat[0].user
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert_error(Api(Client(), minted["token"]).get("/client/token"), 401, "expired_api_key")


def test_user_me_of_a_restricted_pat_lists_only_its_projects(user, project, make_project):
    make_project(owner=user, name="Not this one")
    _, token = personal_token_create(user=user, name="Narrow", projects=[project])
    answer = assert_ok(Api(Client(), token).get("/v1/user/me"))
    assert [p["slug"] for p in answer["projects"]] == [project.slug]


def test_a_restricted_pat_whose_projects_are_all_deleted_reaches_none(user, project, make_project):
    other = make_project(owner=user, name="Still here")
    _, token = personal_token_create(user=user, name="Narrow", projects=[project])
    project.delete()
    cli = Api(Client(), token)
    assert assert_ok(cli.get("/v1/user/me"))["projects"] == []
    error = assert_error(
        cli.get("/v1/projects/current", headers={"X-Project": other.slug}),
        403,
        "insufficient_permissions",
    )
    assert "not allowed to act on project" in error["message"]


def test_a_client_token_whose_minter_left_the_project_tells_the_browser_nothing_more(
    cli, pat, project, make_user
):
    minted = assert_ok(
        cli.post("/v1/client-tokens", {"context": {}}, headers={"X-Project": project.slug}), 201
    )
    owner = make_user()
    Membership.objects.create(user=owner, project=project, role=Membership.Role.OWNER)
    membership_remove(
        membership=Membership.objects.get(user=pat[0].user, project=project), by=owner
    )
    error = assert_error(
        Api(Client(), minted["token"]).get("/client/token"), 401, "expired_api_key"
    )
    # Ended with its minter's membership: the browser is told only that it ended, not who
    # minted it, nor why.
    assert error["message"] == CLIENT_TOKEN_ENDED
    assert "left" not in error["message"] and "person" not in error["message"]


def test_user_me_lists_only_the_projects_the_token_can_act_in(cli, user, project, make_project):
    """Not those whose two-factor requirement or lifetime policy refuses it: a CLI that
    listed them and then called got 403 from each."""
    needs_a_factor = make_project(owner=user, name="Two-factor")
    short_lived = make_project(owner=user, name="Short-lived")
    Project.objects.filter(pk=needs_a_factor.pk).update(require_two_factor=True)
    Project.objects.filter(pk=short_lived.pk).update(max_pat_lifetime_days=30)
    listed = [p["slug"] for p in assert_ok(cli.get("/v1/user/me"))["projects"]]
    assert listed == [project.slug]
    for slug in (needs_a_factor.slug, short_lived.slug):
        refused = cli.get("/v1/projects/current", headers={"X-Project": slug})
        assert_error(refused, 403, "insufficient_permissions")
