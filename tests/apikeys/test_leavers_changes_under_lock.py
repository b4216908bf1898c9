"""A person's changes to a project's keys and client tokens (made on its pages, or on /v1
with their PAT) hold their membership until they commit (accounts.services.member_hold):
either the change commits first, and the owners see it as they see any, or the person's
removal does, and the change is refused as their next request would be (the pages: 404;
/v1: 403 insufficient_permissions, CONTRACT.md) with nothing of it written."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Project, User
from accounts.services import membership_remove
from apikeys.models import ApiKey, ClientToken
from apikeys.services import client_token_create, personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error
from tests.conftest import (
    HTMX,
    THREAD_SECONDS,
    Api,
    another_connection,
    backend_pid,
    commit_once_it_waits,
    finished,
    started,
    waits_for,
)

CONCURRENT = "SQLite serialises all writers: the lock is shown on PostgreSQL."


@pytest.fixture
def lous_key(make_key, project, lou) -> ApiKey:
    return make_key(project, name="Lou's deploys", created_by=lou)[0]


@pytest.fixture
def page(lou) -> Client:
    browser = Client()
    browser.force_login(lou)
    return browser


@pytest.fixture
def cli(lou, project) -> Api:
    """Lou's PAT, able to manage keys, naming the project."""
    _, secret = personal_token_create(user=lou, name="Lou's CLI", permissions=["agents", "keys"])
    api = Api(Client(), secret)
    api.client.defaults["HTTP_X_PROJECT"] = project.slug
    return api


def _remove(project: Project, lou: User, owner: User) -> None:
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=owner)


def _key_changes() -> int:
    """The audit events of changes to keys and client tokens."""
    return AuditEvent.objects.filter(action__regex=r"^(api_key|client_token)\.").count()


def _key_url(name: str, project: Project, key: ApiKey) -> str:
    return reverse(name, args=[project.slug, key.pk])


# What Lou asks for, on the pages and on /v1: (the view module and the service it calls,
# the request).
PAGE_CHANGES = {
    "create a key": (
        "apikeys.views.api_keys",
        "api_key_create",
        lambda p, key: (
            reverse("apikeys:api_key_create", args=[p.slug]),
            {"name": "Lou's new key", "access": "full", "expiry": "never", "form_id": "f-1"},
        ),
    ),
    "roll a key": (
        "apikeys.views.api_keys",
        "api_key_roll",
        lambda p, key: (
            _key_url("apikeys:api_key_roll", p, key),
            {"overlap": "1h", "form_id": "f-2"},
        ),
    ),
    "revoke a key": (
        "apikeys.views.api_keys",
        "api_key_revoke",
        lambda p, key: (_key_url("apikeys:api_key_revoke", p, key), {}),
    ),
    "resume a key": (
        "apikeys.views.api_keys",
        "api_key_resume",
        lambda p, key: (_key_url("apikeys:api_key_resume", p, key), {}),
    ),
    "limit a key's networks": (
        "usage.networks",
        "token_networks_set",
        lambda p, key: (_key_url("usage:api_key_networks", p, key), {"networks": "10.0.0.0/8"}),
    ),
}


@pytest.mark.parametrize("change", PAGE_CHANGES)
def test_a_page_that_let_a_member_in_before_their_removal_changes_no_key(
    page, project, user, lou, lous_key, change, monkeypatch
):
    """The removal commits after the page found Lou a member, before the change is
    written: 404, as the project's pages are to Lou from now on; the key is as it was."""
    import importlib

    module_name, service, request = PAGE_CHANGES[change]
    module = importlib.import_module(module_name)
    real = getattr(module, service)
    if change == "resume a key":
        ApiKey.objects.filter(pk=lous_key.pk).update(suspended_at=lous_key.created_at)

    def removed_first(*args, **kwargs):
        _remove(project, lou, user)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, service, removed_first)
    before = ApiKey.objects.values().get(pk=lous_key.pk)
    changes = _key_changes()
    url, data = request(project, lous_key)
    answer = page.post(url, data, headers=HTMX)
    assert answer.status_code == 404
    assert ApiKey.objects.filter(project=project).count() == 1
    assert ApiKey.objects.values().get(pk=lous_key.pk) == before
    assert _key_changes() == changes


def test_a_page_that_let_a_member_in_before_their_removal_revokes_no_client_token(
    page, project, user, lou, lous_key, monkeypatch
):
    from apikeys.views import client_tokens as views

    token, _ = client_token_create(project=project, context={}, api_key=lous_key)
    real = views.client_token_revoke

    def removed_first(*args, **kwargs):
        _remove(project, lou, user)
        return real(*args, **kwargs)

    monkeypatch.setattr(views, "client_token_revoke", removed_first)
    changes = _key_changes()
    url = reverse("apikeys:client_token_revoke", args=[project.slug, token.public_id])
    assert page.post(url, headers=HTMX).status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert _key_changes() == changes


API_CHANGES = {
    "create a key": ("api.api_keys", "api_key_create", "POST", "/v1/api-keys", {"name": "CI"}),
    "roll a key": ("api.api_keys", "api_key_roll", "POST", "/v1/api-keys/{id}/roll", {}),
    "revoke a key": ("api.api_keys", "api_key_revoke", "DELETE", "/v1/api-keys/{id}", None),
    "mint a client token": (
        "api.views",
        "client_token_create",
        "POST",
        "/v1/client-tokens",
        {"context": {}},
    ),
}


@pytest.mark.parametrize("change", API_CHANGES)
def test_a_pat_call_that_was_let_in_before_its_persons_removal_changes_nothing(
    cli, project, user, lou, lous_key, change, monkeypatch
):
    """As above, on /v1 with Lou's PAT: 403 insufficient_permissions, what a PAT whose
    person is not a member of X-Project gets (CONTRACT.md), and nothing is written."""
    import importlib

    module_name, service, method, path, body = API_CHANGES[change]
    module = importlib.import_module(module_name)
    real = getattr(module, service)

    def removed_first(*args, **kwargs):
        _remove(project, lou, user)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, service, removed_first)
    before = ApiKey.objects.values().get(pk=lous_key.pk)
    changes = _key_changes()
    answer = cli.send(method, path.format(id=f"key_{lous_key.pk}"), body)
    error = assert_error(answer, 403, "insufficient_permissions")
    assert error["message"] == f"This token's user is not a member of a project '{project.slug}'."
    assert ApiKey.objects.filter(project=project).count() == 1
    assert ApiKey.objects.values().get(pk=lous_key.pk) == before
    assert not ClientToken.objects.exists()
    assert _key_changes() == changes


def test_a_member_removed_earlier_cannot_be_made_a_keys_creator_or_mint_through_the_services(
    project, user, lou, lous_key
):
    from accounts.services import NoLongerAMember
    from apikeys.services import api_key_create, api_key_revoke

    pat, _ = personal_token_create(user=lou, name="CLI")
    _remove(project, lou, user)
    with pytest.raises(NoLongerAMember):
        api_key_create(project=project, name="Later", created_by=lou)
    with pytest.raises(NoLongerAMember):
        api_key_revoke(api_key=lous_key, by=lou)
    with pytest.raises(NoLongerAMember):
        client_token_create(project=project, personal_token=pat, context={})
    # A script's change, or a report of a leak, is no person's: it goes through.
    api_key_create(project=project, name="Scripted", created_by=None)
    assert api_key_revoke(api_key=lous_key, by=None)


# -- On PostgreSQL: the removal and the change at the same moment


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "surface", ["page", "api", "client token", "api, retried", "client token, retried"]
)
def test_a_change_on_its_way_waits_for_the_removal_in_progress_and_is_refused(
    project, user, lou, surface
):
    """An owner's removal of Lou has deleted the membership and not committed yet; Lou's
    request arrives (the membership still reads as there), waits for the removal, and
    once it commits is refused: no key, no client token. Sent with an Idempotency-Key
    (its write and kept answer one transaction), the same, and the key is free again."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    from api.models import IdempotencyRecord

    surface, _, retried = surface.partition(", ")
    key = {"Idempotency-Key": "lou-1"} if retried else {}
    mine = Membership.objects.get(project=project, user=lou)
    _, secret = personal_token_create(user=lou, name="CLI", permissions=["agents", "keys"])
    api = Api(Client(), secret)
    browser = Client()
    browser.force_login(lou)
    sends = {
        "page": lambda: browser.post(
            reverse("apikeys:api_key_create", args=[project.slug]),
            {"name": "Lou's", "access": "full", "expiry": "never", "form_id": "f-1"},
            headers=HTMX,
        ),
        "api": lambda: api.post(
            "/v1/api-keys", {"name": "CI"}, headers={"X-Project": project.slug, **key}
        ),
        "client token": lambda: api.post(
            "/v1/client-tokens", {"context": {}}, headers={"X-Project": project.slug, **key}
        ),
    }
    answers = []
    with another_connection() as other:
        other.execute("DELETE FROM accounts_membership WHERE id = %s", [mine.pk])
        waited = commit_once_it_waits(other, lambda: answers.append(sends[surface]()))
    assert waited
    [answer] = answers
    if surface == "page":
        assert answer.status_code == 404
    else:
        assert_error(answer, 403, "insufficient_permissions")
    assert not ApiKey.objects.filter(project=project).exists()
    assert not ClientToken.objects.exists()
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("surface", ["page", "api, retried"])
def test_a_removal_waits_for_the_key_the_member_is_making_and_the_owners_then_see_it(
    project, user, lou, monkeypatch, surface
):
    """Lou's key is being made (inside its transaction) when an owner removes Lou: the
    removal waits for it, so the key is committed first, is Lou's, and is in the owners'
    list marked as made by someone who left, like any key of a leaver. On /v1 with an
    Idempotency-Key, the transaction runs on to the kept answer: the removal waits for
    that too, and Lou's retry, a leaver's, is refused like any call of theirs."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    import apikeys.services.api_keys

    inside, go_on = threading.Event(), threading.Event()
    making: dict[str, int] = {}
    real_audit = apikeys.services.api_keys.audit_record

    def audit_then_pause(**kwargs):
        event = real_audit(**kwargs)
        if kwargs["action"] == "api_key.created":
            making["pid"] = backend_pid()
            inside.set()
            # Longer than waits_for may take below: the pause ends when the test says so.
            go_on.wait(timeout=THREAD_SECONDS)
        return event

    monkeypatch.setattr(apikeys.services.api_keys, "audit_record", audit_then_pause)
    lous_page, owners_page = Client(), Client()
    lous_page.force_login(lou)
    owners_page.force_login(user)
    answers: dict[str, object] = {}
    _, secret = personal_token_create(user=lou, name="CLI", permissions=["keys"])
    lous_cli = Api(Client(), secret)
    retried = {"X-Project": project.slug, "Idempotency-Key": "lou-1"}
    makes = {
        "page": lambda: lous_page.post(
            reverse("apikeys:api_key_create", args=[project.slug]),
            {"name": "Lou's", "access": "full", "expiry": "never", "form_id": "f-1"},
            headers=HTMX,
        ),
        "api, retried": lambda: lous_cli.post("/v1/api-keys", {"name": "Lou's"}, headers=retried),
    }
    making_thread = started(lambda: answers.update(made=makes[surface]()))
    try:
        assert inside.wait(timeout=THREAD_SECONDS)
        mine = Membership.objects.get(project=project, user=lou)
        removal = started(
            lambda: answers.update(
                removed=owners_page.post(
                    reverse("accounts:project_member_remove", args=[project.slug, mine.pk])
                )
            )
        )
        waited = waits_for(making["pid"], removal)
    finally:
        go_on.set()
    finished(making_thread, removal)
    assert waited
    assert answers["made"].status_code == 201 and answers["removed"].status_code == 302
    assert not Membership.objects.filter(project=project, user=lou).exists()
    key = ApiKey.objects.get(project=project)
    assert key.created_by == lou
    made, removed = (
        AuditEvent.objects.get(action=action, project=project).pk
        for action in ("api_key.created", "membership.removed")
    )
    assert made < removed
    listed = owners_page.get(reverse("apikeys:api_key_list", args=[project.slug]))
    assert listed.context["creator_left"] == 1
    if surface == "api, retried":
        from api.models import IdempotencyRecord

        assert IdempotencyRecord.objects.get().status == 201  # kept with the key, before
        again = lous_cli.post("/v1/api-keys", {"name": "Lou's"}, headers=retried)
        assert_error(again, 403, "insufficient_permissions")
        assert ApiKey.objects.filter(project=project).count() == 1


def test_the_owners_still_manage_the_keys_of_someone_they_removed(
    signed_in, project, user, lou, lous_key
):
    _remove(project, lou, user)
    url = _key_url("apikeys:api_key_revoke", project, lous_key)
    assert signed_in.post(url, headers=HTMX).status_code == 200
    assert ApiKey.objects.get(pk=lous_key.pk).revoked_at is not None
