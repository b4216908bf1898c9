"""The role matrix's refusals (tests/accounts/test_role_matrix.py), asked every other way a
request can come: signed out, without its CSRF token, by htmx naming any target and any
page it was sent from, with an id that is no row (huge, negative, not ASCII digits, a
token pasted in its place), and through a filter that names another project's row. Each
refusal is checked by the whole database, as the role matrix checks its own, and by what
the answer does not show.

The fragments a view picks by HX-Target (key-panel, key-table, member-list,
token-table) are where a refusal could be skipped for htmx alone: each is asked for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.core import mail
from django.test import Client, TestCase
from django.urls import reverse

from accounts.models import User
from tests.accounts import test_role_matrix as matrix
from tests.accounts.test_role_matrix import (
    ACCOUNT_POLICY,
    OWNER,
    PROJECT_POLICY,
    World,
    account_url,
    as_,
    cases,
    changed,
    database,
    no_body,
    project_url,
    send,
    world_of,
)

# The role matrix's world, made once for this file as for its own.
made_once, world = matrix.made_once, matrix.world

# Every HX-Target a view reads, and none.
TARGETS = (None, "key-panel", "key-table", "member-list", "token-table")


@contextmanager
def nothing_done() -> Iterator[None]:
    """What the block asks changes no row and mails nobody (the mails a change sends once
    it commits included: the world's outer transaction never commits)."""
    before = database()
    with TestCase.captureOnCommitCallbacks(execute=True):
        yield
    assert changed(before) == []
    assert mail.outbox == []


def by_htmx(
    client: Client, method: str, url: str, body: dict[str, Any], *, target: str | None, page: str
) -> Any:
    """`url` asked by htmx for `target`, from `page` (HX-Current-URL, which anyone can
    set to any address)."""
    headers = {"HX-Request": "true", "HX-Current-URL": f"http://testserver{page}"}
    if target:
        headers["HX-Target"] = target
    if method == "GET":
        return client.get(url, headers=headers)
    return client.post(url, body, headers=headers)


def text(response: Any) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


def names_of(w: World) -> list[str]:
    """What of a project no one outside it may read."""
    return [w.project.name, w.key.name, w.key.hint, w.carol.email, w.invitation.email]


@pytest.fixture
def stranger(world, make_user) -> User:
    """Someone with a project of their own, in none of the world's."""
    return make_user(email="stranger@example.com")


@pytest.fixture
def theirs(world, make_user, make_project) -> World:
    """The same things in a project of someone else's, in which Ada is no member."""
    zed = make_user(email="zed@example.com")
    project = make_project(owner=zed, name="Zedland")
    return world_of(project, ada=zed, make_user=make_user, tag="3")


# -- Signed out


@pytest.mark.parametrize(("name", "method"), cases(PROJECT_POLICY))
def test_signed_out_the_project_url_asks_to_sign_in_plain_or_by_htmx(world, name, method):
    rule = PROJECT_POLICY[name]
    url = project_url(world, name)
    login = reverse("accounts:login")
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(Client(), method, url, rule.body(world), target=target, page=url)
            # htmx is told to load sign-in as a whole page (accounts.middleware).
            assert answer["HX-Redirect"].startswith(login), (target, answer.status_code)
            assert world.project.name not in text(answer)
        answer = send(Client(), method, url, rule.body(world))
        assert answer.status_code == 302 and answer["Location"].startswith(login)


@pytest.mark.parametrize(("name", "method"), cases(ACCOUNT_POLICY))
def test_signed_out_the_account_url_asks_htmx_to_sign_in_as_a_whole_page(world, name, method):
    rule = ACCOUNT_POLICY[name]
    url = account_url(world, name)
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(Client(), method, url, rule.body(world), target=target, page=url)
            assert answer["HX-Redirect"].startswith(reverse("accounts:login")), target
            assert world.pat.name not in text(answer)


# -- Without the CSRF token


def _csrf_checked(person: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(person)
    session = client.session
    session["sudo_at"] = time.time()
    session.save()
    return client


def posts(policy: dict[str, Any]) -> list[Any]:
    """(name, "POST") for each URL of `policy` that takes a POST: a GET takes no token."""
    return [case for case in cases(policy) if case.values[1] == "POST"]


@pytest.mark.parametrize(("name", "method"), posts(PROJECT_POLICY))
def test_a_project_post_without_its_csrf_token_is_refused_and_changes_nothing(world, name, method):
    rule = PROJECT_POLICY[name]
    client = _csrf_checked(world.ada)
    url = project_url(world, name)
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(client, "POST", url, rule.body(world), target=target, page=url)
            assert answer.status_code == 403, target
        assert client.post(url, rule.body(world)).status_code == 403


@pytest.mark.parametrize(("name", "method"), posts(ACCOUNT_POLICY))
def test_an_account_post_without_its_csrf_token_is_refused_and_changes_nothing(world, name, method):
    rule = ACCOUNT_POLICY[name]
    client = _csrf_checked(world.ada if rule.actor == "ada" else world.bob)
    with nothing_done():
        assert client.post(account_url(world, name), rule.body(world)).status_code == 403


# -- By htmx, whatever the target


@pytest.mark.parametrize(("name", "method"), cases(PROJECT_POLICY))
def test_to_htmx_someone_of_another_project_gets_404_naming_nothing(world, stranger, name, method):
    """Sent from their own project's page, for any fragment."""
    rule = PROJECT_POLICY[name]
    url = project_url(world, name)
    own = reverse("overview:project_overview", args=[stranger.memberships.get().project.slug])
    client = as_(stranger)
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(client, method, url, rule.body(world), target=target, page=own)
            assert answer.status_code == 404, target
            assert not [n for n in names_of(world) if n in text(answer)], target


@pytest.mark.parametrize(
    ("name", "method"), cases(PROJECT_POLICY, where=lambda r: r.args is not no_body)
)
def test_to_htmx_an_id_of_another_project_under_ones_own_is_404_naming_nothing(
    world, theirs, name, method
):
    """/projects/<Ada's>/…/<an id of Zed's project>/, Ada being no member of Zed's."""
    rule = PROJECT_POLICY[name]
    url = reverse(name, kwargs={"slug": world.project.slug, **rule.args(theirs)})
    client = as_(world.ada)
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(client, method, url, rule.body(world), target=target, page=url)
            assert answer.status_code == 404, target
            assert not [n for n in names_of(theirs) if n in text(answer)], target


@pytest.mark.parametrize(("name", "method"), cases(PROJECT_POLICY, who=OWNER))
def test_to_htmx_a_plain_member_is_refused_what_only_owners_may(world, name, method):
    rule = PROJECT_POLICY[name]
    url = project_url(world, name)
    client = as_(world.bob)
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(client, method, url, rule.body(world), target=target, page=url)
            assert answer.status_code == rule.refused_with, target
            # What owners alone see: whom they invited, where the project's alerts go.
            assert world.invitation.email not in text(answer), target
            assert "hooks.example.com" not in text(answer), target


@pytest.mark.parametrize(
    ("name", "method"), cases(ACCOUNT_POLICY, where=lambda rule: rule.args is not no_body)
)
def test_to_htmx_another_persons_token_or_passkey_is_404(world, name, method):
    rule = ACCOUNT_POLICY[name]
    url = account_url(world, name)
    client = as_(world.bob)
    with nothing_done():
        for target in TARGETS:
            answer = by_htmx(client, method, url, rule.body(world), target=target, page=url)
            assert answer.status_code == 404, target
            assert world.pat.name not in text(answer) and world.pat.hint not in text(answer)


# -- Ids that are no row


# Past int32 and int64, digits int() takes that are not ASCII, a sign, an exponent.
NO_ROW = ("0", "2147483648", "9223372036854775808", "1" * 40, "²", "٣", "-1", "1e3", "%00")
TOKEN = "reminix_sk_" + "A" * 36


def _with_id(url: str, value: object, instead: str) -> str:
    place = f"/{value}/"
    assert place in url
    return url.replace(place, f"/{instead}/", 1)


def _id_cases() -> list[Any]:
    return cases(PROJECT_POLICY, where=lambda r: r.args is not no_body) + cases(
        ACCOUNT_POLICY, where=lambda r: r.args is not no_body
    )


@pytest.mark.parametrize(("name", "method"), _id_cases())
def test_an_id_that_is_no_row_is_404_not_a_500(world, name, method):
    rule = PROJECT_POLICY.get(name) or ACCOUNT_POLICY[name]
    url = project_url(world, name) if name in PROJECT_POLICY else account_url(world, name)
    client = as_(world.ada)
    with nothing_done():
        for value in rule.args(world).values():
            for instead in NO_ROW:
                odd = _with_id(url, value, instead)
                assert send(client, method, odd, rule.body(world)).status_code == 404, instead
                answer = by_htmx(
                    client, method, odd, rule.body(world), target="key-panel", page=url
                )
                assert answer.status_code == 404, instead


@pytest.mark.parametrize(("name", "method"), _id_cases())
def test_a_token_pasted_in_place_of_an_id_acts_on_nothing_and_is_not_shown(world, name, method):
    """A POST is 404; a GET goes home without it (core.htmx.address_without_tokens)."""
    rule = PROJECT_POLICY.get(name) or ACCOUNT_POLICY[name]
    url = project_url(world, name) if name in PROJECT_POLICY else account_url(world, name)
    client = as_(world.ada)
    with nothing_done():
        for value in rule.args(world).values():
            answer = send(client, method, _with_id(url, value, TOKEN), rule.body(world))
            if method == "POST":
                assert answer.status_code == 404
            else:
                assert (answer.status_code, answer["Location"]) == (303, reverse("home"))
            assert TOKEN not in text(answer)


# -- Filters that name another project's rows


FILTERED = (
    "overview:project_overview",
    "usage:project_usage",
    "usage:project_usage_export",
    "usage:project_calls",
    "usage:project_calls_export",
    "alerts:flag_list",
    "apikeys:client_token_list",
    "apikeys:api_key_list",
    "accounts:project_audit",
    "accounts:project_audit_csv",
    "accounts:project_members",
)


@pytest.mark.parametrize("name", FILTERED)
def test_a_filter_naming_another_projects_row_shows_nothing_of_it(world, theirs, name):
    """Ada's pages, pages by htmx and exports asked for Zed's key, person, call or
    client token by every filter the pages read."""
    url = project_url(world, name)
    client = as_(world.ada)
    queries = [
        {"key": theirs.key.pk},
        {"target": f"apikey:{theirs.key.pk}"},
        {"actor_id": theirs.carol.pk},
        {"actor": theirs.carol.email},
        {"request_id": theirs.request_id},
        {"client_token": theirs.client_token_id},
        {"q": theirs.key.name},
    ]
    secret = [theirs.key.hint, theirs.carol.email, theirs.request_id, theirs.client_token_id]
    for query in queries:
        for answer in (
            client.get(url, query),
            client.get(url, query, headers={"HX-Request": "true"}),
        ):
            assert answer.status_code in (200, 400), query
            asked = {str(v) for v in query.values()}
            assert not [s for s in secret if s in text(answer) and s not in asked], query
            assert theirs.project.name not in text(answer), query
