"""A person's other security-relevant changes in a project hold their membership until
they commit, as their key changes do (accounts.services.member_hold): deploying an agent
with their PAT (what answers the project's calls), acknowledging an alert, and saying "this
network is ours" (which silences alerts about it). A removal that commits while one is on
its way refuses it, as the person's next request would be refused (the pages: 404; /v1:
403 insufficient_permissions), with nothing of it written."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project, User
from accounts.services import membership_remove
from agents.models import Agent
from alerts.models import Flag, KeyNetwork
from apikeys.models import ApiKey
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error
from tests.conftest import HTMX, Api


@pytest.fixture
def lou(project, make_user) -> User:
    """A member of the project (not an owner), about to be removed from it."""
    member = make_user(email="lou@example.com", name="Lou")
    Membership.objects.create(project=project, user=member)
    return member


def _removed_first(monkeypatch, module: object, service: str, project: Project, lou: User, by):
    """`module.service` removes Lou (by the owner `by`) before it runs: the removal
    commits after the request found Lou a member, before the change is written."""
    real = getattr(module, service)

    def removed_first(*args, **kwargs):
        membership_remove(membership=Membership.objects.get(project=project, user=lou), by=by)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, service, removed_first)


def test_an_agent_deploy_with_the_pat_of_someone_removed_meanwhile_is_refused(
    project, user, lou, monkeypatch
):
    import agents.api

    _, secret = personal_token_create(user=lou, name="Lou's deployer")
    api = Api(Client(), secret)
    _removed_first(monkeypatch, agents.api, "agent_deploy", project, lou, user)
    before = list(Agent.objects.filter(project=project).values())
    deploy = {"kind": "echo", "description": "Lou's", "config": {"prompt": "mine"}}
    answer = api.send("PUT", "/v1/agents/my-agent", deploy, headers={"X-Project": project.slug})
    error = assert_error(answer, 403, "insufficient_permissions")
    assert error["message"] == f"This token's user is not a member of a project '{project.slug}'."
    assert list(Agent.objects.filter(project=project).values()) == before
    assert not AuditEvent.objects.filter(action__startswith="agent.", actor=lou).exists()


def test_an_api_keys_deploy_has_no_person_and_goes_through(project, api):
    deploy = {"kind": "echo", "description": "Scripted", "config": {}}
    assert api.send("PUT", "/v1/agents/my-agent", deploy).status_code == 200


@pytest.fixture
def flag(project, make_key) -> Flag:
    """An open alert: a key used from a network it had not been used from."""
    key: ApiKey = make_key(project, name="Production")[0]
    now = timezone.now()
    return Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.NEW_NETWORK,
        severity=Flag.Severity.MEDIUM,
        dedupe_key=f"{project.pk}:new_network:{key.pk}",
        summary="Key “Production” used from a new network",
        evidence={"network": "198.51.100.0/24"},
        first_seen=now - timedelta(minutes=5),
        last_seen=now,
    )


FLAG_CHANGES = {
    "acknowledge": ("flag_acknowledge", "alerts:flag_acknowledge"),
    "this network is ours": ("flag_network_ours", "alerts:flag_network_ours"),
}


@pytest.mark.parametrize("change", FLAG_CHANGES)
def test_an_alert_is_not_closed_by_someone_removed_while_their_click_was_on_its_way(
    client, project, user, lou, flag, change, monkeypatch
):
    import alerts.views

    service, url_name = FLAG_CHANGES[change]
    _removed_first(monkeypatch, alerts.views, service, project, lou, user)
    client.force_login(lou)
    answer = client.post(reverse(url_name, args=[project.slug, flag.pk]), headers=HTMX)
    assert answer.status_code == 404
    flag.refresh_from_db()
    assert flag.acknowledged_at is None
    assert not KeyNetwork.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="flag.").exists()


@pytest.mark.parametrize("change", FLAG_CHANGES)
def test_a_member_still_closes_an_alert(client, project, lou, flag, change):
    _, url_name = FLAG_CHANGES[change]
    client.force_login(lou)
    answer = client.post(reverse(url_name, args=[project.slug, flag.pk]), headers=HTMX)
    assert answer.status_code == 200
    flag.refresh_from_db()
    assert flag.acknowledged_by == lou
