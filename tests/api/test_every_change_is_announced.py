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
from accounts.models import Membership, Project
from accounts.services import membership_remove, project_set_allowed_origins, project_set_key_policy
from apikeys.models import ClientToken
from apikeys.reported import Reporter, tokens_revoke_reported
from apikeys.services import (
    api_key_end_previous_secret,
    api_key_roll,
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
