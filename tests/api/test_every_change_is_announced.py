"""With Redis, a worker answers a known token from its copy of the caller. Each change a
copy depends on must be announced (core.invalidation.changed) by the service that makes
it, or the worker keeps answering from the copy for up to 2 s: each test here copies a
caller, makes one change through its service, and expects the very next call refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.email_verification import confirm, verification_url
from accounts.models import Membership, Project, TotpDevice
from accounts.services import (
    membership_add,
    membership_remove,
    membership_set_role,
    project_delete,
    project_set_allowed_origins,
    project_set_key_policy,
    project_set_two_factor_policy,
)
from agents.services import agent_deploy
from apikeys.models import ClientToken
from apikeys.reported import Reporter, tokens_revoke_reported
from apikeys.services import (
    api_key_end_previous_secret,
    api_key_resume,
    api_key_roll,
    api_key_suspend,
    client_token_revoke,
    client_tokens_revoke_for_key,
    personal_token_create,
    personal_token_regenerate,
    personal_token_revoke,
    token_networks_set,
)
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api

INVOKE = "/v1/agents/my-agent/invoke"
REPORTER = Reporter(ip="203.0.113.9", user_agent="finder")


@pytest.fixture
def announced(redis_store, django_capture_on_commit_callbacks):
    """Run a change as a committed transaction would: its announcements sent."""

    def run(change, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return change(*args, **kwargs)

    return run


def copied(call):
    """Make the call twice: the second is answered from the worker's copy, without asking
    the database for its token (else these tests would prove nothing about the copies)."""
    assert_ok(call())
    with CaptureQueriesContext(connection) as asked:
        answer = assert_ok(call())
    lookups = [q["sql"] for q in asked.captured_queries if q["sql"].startswith("SELECT")]
    assert not [sql for sql in lookups if "apikeys_" in sql], lookups  # the token tables
    return answer


@pytest.fixture
def shared(make_user, user):
    """A project of another owner that `user` is a member of, and the owner."""
    owner = make_user(email="owner@example.com")
    project = Project.objects.for_user(owner).get()
    Membership.objects.create(project=project, user=user)
    return project, owner


@pytest.fixture
def pat(user):
    return personal_token_create(user=user, name="CLI")


def minted(token: str, headers: dict | None = None) -> Api:
    answer = assert_ok(
        Api(Client(), token).post("/v1/client-tokens", {"context": {}}, headers=headers), 201
    )
    return Api(Client(), answer["token"])


def test_a_leavers_pat_and_its_client_tokens_are_refused_next_call(announced, pat, shared, user):
    project, owner = shared
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: cli.post(INVOKE, {"prompt": "hi"}, headers=headers))
    copied(lambda: browser.get("/client/token"))
    membership = Membership.objects.get(project=project, user=user)
    announced(membership_remove, membership=membership, by=owner)
    assert_error(
        cli.post(INVOKE, {"prompt": "hi"}, headers=headers), 403, "insufficient_permissions"
    )
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_revoked_pat_and_its_client_tokens_are_refused_next_call(announced, pat, project, user):
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: cli.get("/v1/projects/current", headers=headers))
    copied(lambda: browser.get("/client/token"))
    announced(personal_token_revoke, personal_token=pat[0], by=user)
    assert_error(cli.get("/v1/projects/current", headers=headers), 401, "expired_api_key")
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_regenerated_pats_old_secret_and_client_tokens_are_refused_next_call(
    announced, pat, project, user
):
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: cli.get("/v1/projects/current", headers=headers))
    copied(lambda: browser.get("/client/token"))
    announced(personal_token_regenerate, personal_token=pat[0], by=user, expires_at=None)
    assert_error(cli.get("/v1/projects/current", headers=headers), 401, "invalid_api_key")
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_pat_out_of_a_new_policy_and_its_client_tokens_are_refused_next_call(
    announced, pat, project, user
):
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: cli.get("/v1/projects/current", headers=headers))
    copied(lambda: browser.get("/client/token"))
    announced(project_set_key_policy, project=project, max_key_days=None, max_pat_days=30, by=user)
    assert_error(cli.get("/v1/projects/current", headers=headers), 403, "insufficient_permissions")
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_pat_limited_to_other_networks_is_refused_next_call(announced, pat, project, user):
    headers = {"X-Project": project.slug}
    cli = Api(Client(), pat[1])
    copied(lambda: cli.get("/v1/projects/current", headers=headers))
    announced(token_networks_set, pat[0], networks=["203.0.113.0/24"], by=user)
    assert_error(cli.get("/v1/projects/current", headers=headers), 403, "ip_not_allowed")


def test_a_rolled_keys_ended_secret_and_its_client_tokens_are_refused_next_call(
    announced, api, api_key, user
):
    browser = minted(api_key[1])
    copied(lambda: api.post(INVOKE, {"prompt": "hi"}))
    copied(lambda: browser.get("/client/token"))
    announced(api_key_roll, api_key=api_key[0], by=user, overlap=timedelta(hours=1))
    assert_ok(api.post(INVOKE, {"prompt": "in the overlap"}))
    copied(lambda: browser.get("/client/token"))
    announced(api_key_end_previous_secret, api_key=api_key[0], by=user)
    assert_error(api.post(INVOKE, {"prompt": "hi"}), 401, "expired_api_key")
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_key_limited_to_other_networks_is_refused_next_call(announced, api, api_key, user):
    copied(lambda: api.post(INVOKE, {"prompt": "hi"}))
    announced(token_networks_set, api_key[0], networks=["203.0.113.0/24"], by=user)
    assert_error(api.post(INVOKE, {"prompt": "hi"}), 403, "ip_not_allowed")


def test_client_tokens_revoked_for_their_key_are_refused_next_call(announced, api_key, user):
    browser = minted(api_key[1])
    copied(lambda: browser.get("/client/token"))
    announced(client_tokens_revoke_for_key, api_key=api_key[0], by=user)
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_revoked_client_token_is_refused_next_call(announced, api_key, user):
    browser = minted(api_key[1])
    copied(lambda: browser.get("/client/token"))
    announced(client_token_revoke, client_token=ClientToken.objects.get(), by=user)
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_reported_tokens_of_every_kind_are_refused_next_call(announced, api, api_key, pat, project):
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(api_key[1])
    copied(lambda: api.post(INVOKE, {"prompt": "hi"}))
    copied(lambda: cli.get("/v1/projects/current", headers=headers))
    copied(lambda: browser.get("/client/token"))
    secrets = [browser.token, pat[1]]
    announced(tokens_revoke_reported, secrets=secrets, reporter=REPORTER)
    assert_error(browser.get("/client/token"), 401, "expired_api_key")
    assert_error(cli.get("/v1/projects/current", headers=headers), 401, "expired_api_key")
    assert_ok(api.post(INVOKE, {"prompt": "its key was not reported"}))
    announced(tokens_revoke_reported, secrets=[api_key[1]], reporter=REPORTER)
    assert_error(api.post(INVOKE, {"prompt": "hi"}), 401, "expired_api_key")


def test_an_origin_no_longer_allowed_is_refused_next_call(announced, api_key, project, user):
    project_set_allowed_origins(project=project, origins=["https://app.example"], by=user)
    browser = minted(api_key[1])
    origin = {"Origin": "https://app.example"}
    copied(lambda: browser.post("/client/agents/my-agent/invoke", {"prompt": "hi"}, headers=origin))
    announced(project_set_allowed_origins, project=project, origins=[], by=user)
    answer = browser.post("/client/agents/my-agent/invoke", {"prompt": "hi"}, headers=origin)
    assert_error(answer, 403, "insufficient_permissions")


def test_a_new_email_address_is_what_the_next_call_reads(announced, pat, user):
    cli = Api(Client(), pat[1])
    assert copied(lambda: cli.get("/v1/user/me"))["email"] == user.email
    token = verification_url(user, "moved@example.com").rstrip("/").rsplit("/", 1)[-1]
    announced(confirm, token, ip=None)
    assert assert_ok(cli.get("/v1/user/me"))["email"] == "moved@example.com"


def test_a_suspended_key_is_refused_next_call_and_works_again_once_resumed(
    announced, api, api_key, user
):
    browser = minted(api_key[1])
    copied(lambda: api.post(INVOKE, {"prompt": "hi"}))
    copied(lambda: browser.get("/client/token"))
    announced(api_key_suspend, api_key=api_key[0], by=user, reason="Looking into it")
    assert_error(api.post(INVOKE, {"prompt": "hi"}), 401, "suspended_api_key")
    assert_error(browser.get("/client/token"), 401, "suspended_api_key")
    announced(api_key_resume, api_key=api_key[0], by=user)
    assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    assert_ok(browser.get("/client/token"))


def test_every_credential_of_a_deleted_project_is_refused_next_call(
    announced, api, api_key, pat, shared, user
):
    project, owner = shared
    headers = {"X-Project": project.slug}
    key = Api(Client(), make_key_in(project, owner))
    cli, by_key, by_pat = Api(Client(), pat[1]), minted(key.token), minted(pat[1], headers)
    copied(lambda: key.post(INVOKE, {"prompt": "hi"}))
    copied(lambda: cli.post(INVOKE, {"prompt": "hi"}, headers=headers))
    copied(lambda: by_key.get("/client/token"))
    copied(lambda: by_pat.get("/client/token"))
    announced(project_delete, project=project, by=owner)
    assert_error(key.post(INVOKE, {"prompt": "hi"}), 401, "expired_api_key")
    refused = cli.post(INVOKE, {"prompt": "hi"}, headers=headers)
    assert_error(refused, 403, "insufficient_permissions")
    assert_error(by_key.get("/client/token"), 401, "expired_api_key")
    assert_error(by_pat.get("/client/token"), 401, "expired_api_key")
    assert_ok(api.post(INVOKE, {"prompt": "another project's key"}))


def test_two_factor_required_refuses_a_pat_without_one_next_call(announced, pat, shared):
    project, owner = shared
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: cli.post(INVOKE, {"prompt": "hi"}, headers=headers))
    copied(lambda: browser.get("/client/token"))
    TotpDevice.objects.create(user=owner, secret_encrypted="-", confirmed_at=owner.date_joined)
    announced(project_set_two_factor_policy, project=project, required=True, by=owner)
    refused = cli.post(INVOKE, {"prompt": "hi"}, headers=headers)
    assert "two-factor" in assert_error(refused, 403, "insufficient_permissions")["message"]
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_a_role_change_leaves_a_members_pat_as_it_was(announced, pat, shared, user):
    """Roles decide nothing on the API (members manage keys on the pages too): a demoted
    owner's PAT, and the client tokens it minted, go on working."""
    project, owner = shared
    headers = {"X-Project": project.slug}
    membership = Membership.objects.get(project=project, user=user)
    announced(membership_set_role, membership=membership, role="owner", by=owner)
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: cli.get("/v1/agents", headers=headers))
    announced(membership_set_role, membership=membership, role="member", by=owner)
    assert_ok(cli.get("/v1/agents", headers=headers))
    assert_ok(browser.get("/client/token"))


def test_a_member_added_again_reaches_the_project_but_not_the_old_client_tokens(
    announced, pat, shared, user
):
    project, owner = shared
    headers = {"X-Project": project.slug}
    cli, browser = Api(Client(), pat[1]), minted(pat[1], headers)
    copied(lambda: browser.get("/client/token"))
    announced(
        membership_remove, membership=Membership.objects.get(project=project, user=user), by=owner
    )
    assert_error(cli.get("/v1/projects/current", headers=headers), 403, "insufficient_permissions")
    announced(membership_add, project=project, user=user, role="member", by=owner)
    assert_ok(cli.get("/v1/projects/current", headers=headers))
    assert_error(browser.get("/client/token"), 401, "expired_api_key")


def test_an_agent_deployed_under_a_name_no_agent_had_is_found_next_call(announced, api, project):
    missing = api.post("/v1/agents/fresh/invoke", {"prompt": "hi"})
    assert_error(missing, 404, "agent_not_found")
    assert_error(api.post("/v1/agents/fresh/invoke", {"prompt": "hi"}), 404, "agent_not_found")
    announced(agent_deploy, project=project, name="fresh", kind="echo", description="", config={})
    assert_ok(api.post("/v1/agents/fresh/invoke", {"prompt": "hi"}))


def make_key_in(project: Project, owner) -> str:
    from apikeys.services import api_key_create

    return api_key_create(project=project, name="Servers", created_by=owner)[1]
