"""Who may do what: every dashboard URL's rule (the role it needs inside a project, whether
a GET or a POST asks for sudo, whether the owners' two-factor requirement keeps a member
out, whether it waits for a confirmed email address) in one table, checked against the code
for every URL and method. The URLs are walked from the resolver, so a new page without a
rule fails here.
tests/accounts/test_projects.py checks that another project's URLs answer 404;
tests/accounts/test_refused_every_way.py asks these refusals signed out, without the CSRF
token, by htmx, with ids that are no row and through filters.

Each request that should be refused is one that would work: the same body, sent by
someone allowed, changes the database (the `allowed` tests), so "refused" never means
"form invalid". A refusal is checked by the whole database, not only by its status."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from itertools import count
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from accounts.models import Invitation, Membership, Passkey, Project, TotpDevice, User
from accounts.services import user_sign_up
from alerts.models import Flag
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import (
    api_key_create,
    api_key_roll,
    api_key_suspend,
    client_token_create,
    personal_token_create,
)
from tests.conftest import PASSWORD, usage_call
from usage.writer import usage_write
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

MEMBER, OWNER, PERSON = "member", "owner", "person"


@dataclass
class World:
    """One project and what its URLs act on. Ada owns it and has a second factor; Grace
    owns it too, without one; Bob and Carol are plain members (Carol is whom the member
    actions act on); Leo made a key and left."""

    project: Project
    ada: User
    grace: User
    bob: User
    carol: User
    carol_membership: Membership
    key: ApiKey
    key_secret: str
    rolled: ApiKey
    suspended: ApiKey
    client_token_id: str
    invitation: Invitation
    flag: Flag
    request_id: str
    endpoint_id: int
    delivery_id: int
    pat: PersonalAccessToken
    passkey: Passkey


def no_body(w: World) -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Rule:
    """Who may GET and POST (MEMBER, OWNER, PERSON: anyone signed in, acting on their own
    account; None: the method is not taken), which methods ask for sudo first, a valid
    body, the URL's other arguments, and whether a POST that is let through writes."""

    get: str | None = None
    post: str | None = None
    sudo: frozenset[str] = frozenset()
    # Methods that wait for a confirmed email address (README, Verified email).
    verified: frozenset[str] = frozenset()
    body: Callable[[World], dict[str, Any]] = no_body
    args: Callable[[World], dict[str, Any]] = no_body
    writes: bool = True
    # The owners' two-factor requirement keeps a member without a second factor out.
    two_factor: bool = True
    # Who acts on an account URL (Ada has an authenticator app, Bob nothing).
    actor: str = "ada"
    # How a member is refused what only owners may do: 403 (project_owner_required), but
    # the settings page, which every member reads, answers a member's rename by coming
    # back to itself with "Only a project owner can rename the project."
    refused_with: int = 403
    # The sudo check is the view's own: a 403 JSON answer that asks for it (WebAuthn's
    # calls from static/js/passkeys.js), not the prompt page.
    sudo_as_json: bool = False
    # No request of this table can show it allowed (a WebAuthn answer, a code from an
    # enrolment begun in the session): its own tests do (tests/accounts).
    checked_allowed: bool = True


GET, POST = frozenset({"GET"}), frozenset({"POST"})
BOTH = GET | POST


def key(w: World) -> dict[str, Any]:
    return {"key_id": w.key.pk}


def carol(w: World) -> dict[str, Any]:
    return {"membership_id": w.carol_membership.pk}


def endpoint(w: World) -> dict[str, Any]:
    return {"endpoint_id": w.endpoint_id}


def pat(w: World) -> dict[str, Any]:
    return {"token_id": w.pat.pk}


def passkey(w: World) -> dict[str, Any]:
    return {"passkey_id": w.passkey.pk}


NEW_KEY = {"name": "Billing", "access": "full", "expiry": "never", "form_id": "form-1"}
ALERT_RULES = {
    f"{kind}_on": "on"
    for kind in ("burst", "new_network", "spike", "client_token_addresses", "unused")
}

# Every URL that takes a project's slug.
PROJECT_POLICY: dict[str, Rule] = {
    "overview:project_overview": Rule(get=MEMBER),
    # Members see the settings; changing the name is the owners'.
    "accounts:project_settings": Rule(
        get=MEMBER, post=OWNER, body=lambda w: {"name": "Mine"}, refused_with=302
    ),
    "accounts:project_origins": Rule(
        post=OWNER, sudo=POST, body=lambda w: {"origins": "https://app.example.com"}
    ),
    "accounts:project_key_policy": Rule(
        verified=POST,
        post=OWNER,
        sudo=POST,
        body=lambda w: {"max_key_days": "30", "max_pat_days": "", "leaked_key_action": "revoke"},
    ),
    # Turns it on, or off where it is on (the two-factor tests below).
    "accounts:project_two_factor_policy": Rule(
        post=OWNER,
        sudo=POST,
        body=lambda w: {} if w.project.require_two_factor else {"require_two_factor": "on"},
    ),
    "accounts:project_delete": Rule(
        post=OWNER, sudo=POST, body=lambda w: {"confirm": w.project.name}
    ),
    "accounts:project_members": Rule(get=MEMBER),
    "accounts:project_invitation_send": Rule(
        verified=POST,
        post=OWNER,
        sudo=POST,
        body=lambda w: {"email": "new@example.com", "role": "member"},
    ),
    "accounts:project_invitation_revoke": Rule(
        post=OWNER, sudo=POST, args=lambda w: {"invitation_id": w.invitation.pk}
    ),
    "accounts:project_member_role": Rule(
        post=OWNER, sudo=POST, args=carol, body=lambda w: {"role": "owner"}
    ),
    "accounts:project_transfer": Rule(post=OWNER, sudo=POST, args=carol),
    "accounts:project_member_remove": Rule(post=OWNER, sudo=POST, args=carol),
    # The page that asks for a second factor offers to leave instead.
    "accounts:project_leave": Rule(post=MEMBER, two_factor=False),
    # Readable by every member (README, Audit log).
    "accounts:project_audit": Rule(get=MEMBER),
    "accounts:project_audit_csv": Rule(get=MEMBER),
    # A key is the project's, not its maker's: any member manages any key.
    "apikeys:api_key_list": Rule(get=MEMBER),
    "apikeys:api_key_create": Rule(
        verified=BOTH, get=MEMBER, post=MEMBER, sudo=BOTH, body=lambda w: NEW_KEY
    ),
    "apikeys:api_key_rename": Rule(
        get=MEMBER, post=MEMBER, args=key, body=lambda w: {"name": "Renamed", "notes": ""}
    ),
    "apikeys:api_key_revoke": Rule(get=MEMBER, post=MEMBER, args=key),
    "apikeys:api_key_roll": Rule(
        verified=BOTH,
        get=MEMBER,
        post=MEMBER,
        sudo=BOTH,
        args=key,
        body=lambda w: {"overlap": "1h"},
    ),
    "apikeys:api_key_end_previous": Rule(post=MEMBER, args=lambda w: {"key_id": w.rolled.pk}),
    "apikeys:api_key_suspend": Rule(
        get=MEMBER, post=MEMBER, args=key, body=lambda w: {"reason": "Seen in a public gist"}
    ),
    "apikeys:api_key_resume": Rule(
        post=MEMBER, sudo=POST, args=lambda w: {"key_id": w.suspended.pk}
    ),
    "apikeys:api_keys_transfer": Rule(post=OWNER, body=lambda w: {"to": w.carol.pk}),
    "apikeys:client_token_list": Rule(get=MEMBER),
    "apikeys:client_token_revoke": Rule(
        post=MEMBER, args=lambda w: {"public_id": w.client_token_id}
    ),
    "apikeys:client_tokens_revoke_all": Rule(post=MEMBER, sudo=POST, args=key),
    "usage:api_key_usage": Rule(get=MEMBER, args=key),
    "usage:api_key_addresses": Rule(get=MEMBER, args=key),
    "usage:api_key_token_addresses": Rule(get=MEMBER, args=key),
    "usage:api_key_networks": Rule(
        get=MEMBER, post=MEMBER, sudo=POST, args=key, body=lambda w: {"networks": "203.0.113.0/24"}
    ),
    "usage:project_usage": Rule(get=MEMBER),
    "usage:project_usage_export": Rule(get=MEMBER),
    "usage:project_calls": Rule(get=MEMBER),
    "usage:project_calls_export": Rule(get=MEMBER),
    "usage:project_call": Rule(get=MEMBER, args=lambda w: {"request_id": w.request_id}),
    "alerts:flag_list": Rule(get=MEMBER),
    "alerts:flag_acknowledge": Rule(post=MEMBER, args=lambda w: {"flag_id": w.flag.pk}),
    "alerts:flag_network_ours": Rule(post=MEMBER, sudo=POST, args=lambda w: {"flag_id": w.flag.pk}),
    "alerts:flag_acknowledge_key": Rule(post=MEMBER, args=key),
    # The alert rules are the owners' (README); "Which key is this?" is every member's:
    # they may revoke the key it names.
    "alerts:token_lookup": Rule(post=MEMBER, body=lambda w: {"token": w.key_secret}, writes=False),
    "alerts:alert_rules": Rule(
        verified=POST,
        get=OWNER,
        post=OWNER,
        sudo=POST,
        body=lambda w: {**ALERT_RULES, "burst_failures": "5"},
    ),
    # Owners only: a Slack URL is itself a secret (README, Webhooks).
    "webhooks:webhook_list": Rule(get=OWNER),
    "webhooks:webhook_create": Rule(
        verified=BOTH,
        get=OWNER,
        post=OWNER,
        sudo=BOTH,
        body=lambda w: {
            "url": "https://hooks.example.com/second",
            "format": "generic",
            "min_severity": "high",
            "form_id": "f1",
        },
    ),
    "webhooks:webhook_detail": Rule(get=OWNER, args=endpoint),
    "webhooks:webhook_test": Rule(post=OWNER, args=endpoint),
    "webhooks:webhook_retry": Rule(
        post=OWNER, args=lambda w: {"endpoint_id": w.endpoint_id, "delivery_id": w.delivery_id}
    ),
    "webhooks:webhook_disable": Rule(post=OWNER, sudo=POST, args=endpoint),
    "webhooks:webhook_secret_roll": Rule(verified=POST, post=OWNER, sudo=POST, args=endpoint),
    "webhooks:webhook_delete": Rule(post=OWNER, sudo=POST, args=endpoint),
}

# Every signed-in URL of one's own account: only its person acts on it (another
# person's token or passkey is 404, checked below).
ACCOUNT_POLICY: dict[str, Rule] = {
    "accounts:account_email": Rule(
        get=PERSON, post=PERSON, sudo=BOTH, body=lambda w: {"email": "ada.new@example.com"}
    ),
    "accounts:account_security": Rule(get=PERSON),
    "accounts:totp_setup": Rule(verified=POST, post=PERSON, sudo=POST, actor="bob"),
    "accounts:totp_confirm": Rule(
        verified=POST,
        post=PERSON,
        sudo=POST,
        actor="bob",
        body=lambda w: {"code": "123456"},
        checked_allowed=False,
    ),
    "accounts:totp_remove": Rule(get=PERSON, post=PERSON, sudo=BOTH),
    "accounts:recovery_codes_new": Rule(post=PERSON, sudo=POST),
    "accounts:passkey_add": Rule(verified=POST, post=PERSON, sudo=POST, writes=False),
    "accounts:passkey_register_options": Rule(
        verified=POST, post=PERSON, sudo=POST, sudo_as_json=True, writes=False
    ),
    "accounts:passkey_register_verify": Rule(
        verified=POST, post=PERSON, sudo=POST, sudo_as_json=True, checked_allowed=False
    ),
    "accounts:passkey_rename": Rule(post=PERSON, args=passkey, body=lambda w: {"name": "Work"}),
    "accounts:passkey_remove": Rule(get=PERSON, post=PERSON, sudo=BOTH, args=passkey),
    "accounts:passkey_sudo_options": Rule(post=PERSON, writes=False),
    # Asks for the current password itself.
    "accounts:password_change": Rule(
        get=PERSON,
        post=PERSON,
        body=lambda w: {
            "old_password": PASSWORD,
            "new_password1": "another long passphrase",
            "new_password2": "another long passphrase",
        },
    ),
    # Signing other sessions out takes access away: no sudo (GitHub asks none either). Ada
    # is signed in on a second browser too (the world fixture).
    "accounts:account_sessions": Rule(get=PERSON, post=PERSON),
    "accounts:account_delete": Rule(
        get=PERSON, post=PERSON, sudo=POST, body=lambda w: {"confirm": w.ada.email}
    ),
    "accounts:user_audit": Rule(get=PERSON),
    "accounts:user_audit_csv": Rule(get=PERSON),
    "accounts:project_create": Rule(get=PERSON, post=PERSON, body=lambda w: {"name": "Side"}),
    "accounts:email_verify_resend": Rule(post=PERSON, writes=False),
    "apikeys:personal_token_list": Rule(get=PERSON),
    "apikeys:personal_token_create": Rule(
        verified=BOTH,
        get=PERSON,
        post=PERSON,
        sudo=BOTH,
        body=lambda w: {
            "name": "Laptop CLI",
            "access": "full",
            "expiry": "30",
            "form_id": "f1",
            "reach": "all",
        },
    ),
    "apikeys:personal_token_networks": Rule(
        get=PERSON, post=PERSON, sudo=POST, args=pat, body=lambda w: {"networks": "203.0.113.0/24"}
    ),
    "apikeys:personal_token_rename": Rule(
        get=PERSON, post=PERSON, args=pat, body=lambda w: {"name": "Renamed"}
    ),
    "apikeys:personal_token_regenerate": Rule(
        verified=BOTH, get=PERSON, post=PERSON, sudo=BOTH, args=pat, body=lambda w: {"expiry": "30"}
    ),
    "apikeys:personal_token_revoke": Rule(get=PERSON, post=PERSON, args=pat),
    "usage:personal_token_usage": Rule(get=PERSON, args=pat),
    "usage:personal_token_usage_export": Rule(get=PERSON, args=pat),
    "notifications:preferences": Rule(
        verified=POST,
        get=PERSON,
        post=PERSON,
        sudo=POST,
        body=lambda w: {
            f"alerts_{m.pk}": "on" for m in Membership.objects.filter(user=w.ada)
        },  # expiry reminders unticked: a change for an owner
    ),
}

# Pages for people not signed in (or not yet through sign-in), and the machinery that
# the rules above use: no role to check.
NOT_ACCOUNT_OR_PROJECT = {
    "home",
    "robots_txt",
    "security_txt",
    "accounts:signup",
    "accounts:login",
    "accounts:login_code",
    "accounts:logout",
    "accounts:sudo_confirm",
    "accounts:email_verify",
    "accounts:passkey_login_options",
    "accounts:passkey_login_verify",
    "accounts:passkey_second_options",
    "accounts:passkey_second_verify",
    "accounts:password_reset",
    "accounts:password_reset_done",
    "accounts:password_reset_confirm",
    "accounts:invitation_accept",
    "api_docs:reference",
}
# The token-authenticated API has its own rules (tests/api).
API_NAMESPACES = {"api", "client_api"}


def dashboard_urls() -> dict[str, str]:
    """Every named dashboard URL and its pattern, from the resolver."""
    found: dict[str, str] = {}

    def walk(patterns: list[Any], namespace: str = "", prefix: str = "") -> None:
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, p.namespace or namespace, prefix + str(p.pattern))
            elif isinstance(p, URLPattern) and p.name and namespace not in API_NAMESPACES:
                found[f"{namespace}:{p.name}" if namespace else p.name] = prefix + str(p.pattern)

    walk(get_resolver().url_patterns)
    return found


def cases(
    policy: dict[str, Rule],
    *,
    who: str | None = None,
    sudo: bool | None = None,
    where: Callable[[Rule], bool] = lambda rule: True,
) -> list[Any]:
    """(name, method) for each method a URL takes: only those `who` may send (if given),
    that ask for sudo or not (if given), of the rules `where` holds for."""
    found = []
    for name, rule in policy.items():
        for method in ("GET", "POST"):
            needs = rule.get if method == "GET" else rule.post
            if needs is None or (who is not None and needs != who):
                continue
            if sudo is not None and (method in rule.sudo) != sudo:
                continue
            if where(rule):
                found.append(pytest.param(name, method, id=f"{name}-{method}"))
    return found


# What no request writes: Django's sessions (a session keeps the current project, the flash
# messages and the time of the last check of who one is), and the rows migrations make.
NOT_COMPARED = {"django_session", "auth_permission", "django_content_type"}


def database() -> dict[str, list[str]]:
    """Every row of every table but NOT_COMPARED's."""
    state = {}
    for model in apps.get_models():
        meta = model._meta
        if meta.proxy or not meta.managed or meta.db_table in NOT_COMPARED:
            continue
        state[meta.label] = sorted(map(repr, model._base_manager.values_list()))
    return state


def changed(before: dict[str, list[str]]) -> list[str]:
    after = database()
    return [label for label in after if after[label] != before.get(label)]


@pytest.fixture(scope="module")
def made_once(django_db_setup: None, django_db_blocker: Any) -> Iterator[World]:
    """The world, made once for this file in a transaction of its own that is rolled back
    at its end; each test runs in a savepoint inside it (pytest-django's `db`, set up after
    this module's fixture), so what a test writes is undone before the next, as
    TestCase.setUpTestData has it. Made for each of the file's 368 tests it was about 60 %
    of the file's time (some 70 rows a test)."""
    with django_db_blocker.unblock(), transaction.atomic():
        ada = user_sign_up(
            email="ada@example.com", password=PASSWORD, name="Ada Lovelace", verified=True
        )
        TotpDevice.objects.create(user=ada, secret_encrypted="x", confirmed_at=timezone.now())
        Client().force_login(ada)  # another browser, for the Sessions page to sign out
        people = count(1)

        def make_user(email: str | None = None, name: str = "") -> User:
            email = email or f"user{next(people)}@example.com"
            return user_sign_up(email=email, password=PASSWORD, name=name, verified=True)

        yield world_of(Project.objects.for_user(ada).get(), ada=ada, make_user=make_user)
        transaction.set_rollback(True)


@pytest.fixture
def world(made_once: World, db: None) -> World:
    """The world as made, in memory too: a copy, so that no test sees another's changes
    to its objects (as setUpTestData's class attributes are copied for each test)."""
    return copy.deepcopy(made_once)


@pytest.fixture
def elsewhere(world, make_user, make_project) -> World:
    """The same things in another project of Ada's, with people of its own."""
    project = make_project(owner=world.ada, name="Elsewhere")
    return world_of(project, ada=world.ada, make_user=make_user, tag="2")


def world_of(
    project: Project, *, ada: User, make_user: Callable[..., User], tag: str = ""
) -> World:
    grace, bob, carol, leo = (
        make_user(email=f"{name}{tag}@example.com", name=name.title())
        for name in ("grace", "bob", "carol", "leo")
    )
    Membership.objects.create(project=project, user=grace, role=Membership.Role.OWNER)
    Membership.objects.create(project=project, user=bob, role=Membership.Role.MEMBER)
    carol_membership = Membership.objects.create(project=project, user=carol)
    leo_membership = Membership.objects.create(project=project, user=leo)
    api_key_create(project=project, name="Leo's", created_by=leo)
    leo_membership.delete()
    key, secret = api_key_create(project=project, name="Production", created_by=ada)
    rolled, _ = api_key_create(project=project, name="Rolled", created_by=ada)
    api_key_roll(api_key=rolled, by=ada, overlap=timedelta(hours=1))
    suspended, _ = api_key_create(project=project, name="Suspended", created_by=ada)
    api_key_suspend(api_key=suspended, by=ada, reason="Looked leaked")
    client_token, _ = client_token_create(project=project, context={}, api_key=key)
    invitation = Invitation.objects.create(
        project=project,
        email="invited@example.com",
        role=Membership.Role.MEMBER,
        token_hash=f"{tag or 0:0>64}",
        invited_by=ada,
        expires_at=timezone.now() + timedelta(days=7),
    )
    now = timezone.now()
    flag = Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.NEW_NETWORK,
        severity="medium",
        dedupe_key=f"new-network:{project.pk}",
        summary="Used from a new network",
        evidence={"network": "198.51.100.0/24", "count": 1},
        first_seen=now,
        last_seen=now,
    )
    call = usage_call(now, key=key)
    usage_write([call])
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/reminix",
        format="generic",
        min_severity="low",
        created_by=ada,
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        flag=flag,
        event_id=f"evt_{project.pk}",
        event_type="alert.raised",
        payload={},
        status=WebhookDelivery.Status.FAILED,
    )
    personal_token, _ = personal_token_create(user=ada, name=f"CLI{tag}")
    passkey_row = Passkey.objects.create(
        user=ada, credential_id=f"cred{tag}", public_key=b"k", user_handle=b"h", name="Phone"
    )
    return World(
        project=project,
        ada=ada,
        grace=grace,
        bob=bob,
        carol=carol,
        carol_membership=carol_membership,
        key=key,
        key_secret=secret,
        rolled=rolled,
        suspended=suspended,
        client_token_id=client_token.public_id,
        invitation=invitation,
        flag=flag,
        request_id=call.request_id,
        endpoint_id=endpoint.pk,
        delivery_id=delivery.pk,
        pat=personal_token,
        passkey=passkey_row,
    )


def as_(person: User, *, sudo: bool = True) -> Client:
    client = Client()
    client.force_login(person)  # a sign-in is a check of who one is
    if not sudo:
        session = client.session
        session["sudo_at"] = time.time() - 3600
        session.save()
    return client


def project_url(w: World, name: str) -> str:
    return reverse(name, kwargs={"slug": w.project.slug, **PROJECT_POLICY[name].args(w)})


def account_url(w: World, name: str) -> str:
    return reverse(name, kwargs=ACCOUNT_POLICY[name].args(w))


def send(client: Client, method: str, url: str, body: dict[str, Any]):
    return client.get(url) if method == "GET" else client.post(url, body)


def templates(response) -> set[str]:
    return {t.name for t in response.templates if t.name}


def prompted(response) -> bool:
    return response.status_code == 200 and "accounts/sudo.html" in templates(response)


def let_through(response, before, rule: Rule, method: str) -> None:
    assert response.status_code < 400, response.status_code
    assert not prompted(response)
    if method == "POST" and rule.writes:
        assert changed(before), "a valid request that changed nothing proves no refusal"


# -- The tables cover every URL


def test_every_project_url_has_a_rule():
    project_urls = {n for n, pattern in dashboard_urls().items() if "<slug:slug>" in pattern}
    assert project_urls == set(PROJECT_POLICY)


def test_every_other_dashboard_url_has_a_rule_or_is_for_anyone():
    others = {n for n, pattern in dashboard_urls().items() if "<slug:slug>" not in pattern}
    assert others == set(ACCOUNT_POLICY) | NOT_ACCOUNT_OR_PROJECT


def test_the_rules_name_only_methods_each_url_takes(world):
    """A rule for a method the URL refuses (405) would test nothing."""
    client = as_(world.ada)
    for name, rule in PROJECT_POLICY.items():
        url = project_url(world, name)
        for method, who in (("GET", rule.get), ("POST", rule.post)):
            if who is None:
                assert send(client, method, url, {}).status_code == 405, (name, method)


# -- Inside a project: roles


@pytest.mark.parametrize(("name", "method"), cases(PROJECT_POLICY))
def test_an_owner_may(world, name, method):
    """With her last check of who she is past sudo's window where the method asks none."""
    rule = PROJECT_POLICY[name]
    client = as_(world.ada, sudo=method in rule.sudo)
    before = database()
    answer = send(client, method, project_url(world, name), rule.body(world))
    let_through(answer, before, rule, method)


@pytest.mark.parametrize(
    ("name", "method"),
    cases(PROJECT_POLICY, who=MEMBER),
)
def test_a_plain_member_may(world, name, method):
    rule = PROJECT_POLICY[name]
    client = as_(world.bob)
    before = database()
    answer = send(client, method, project_url(world, name), rule.body(world))
    let_through(answer, before, rule, method)


@pytest.mark.parametrize(
    ("name", "method"),
    cases(PROJECT_POLICY, who=OWNER),
)
def test_a_plain_member_is_refused_what_only_owners_may(world, name, method):
    rule = PROJECT_POLICY[name]
    client = as_(world.bob)
    before = database()
    answer = send(client, method, project_url(world, name), rule.body(world))
    assert answer.status_code == rule.refused_with
    assert changed(before) == []


@pytest.mark.parametrize(
    ("name", "method"), cases(PROJECT_POLICY, where=lambda rule: rule.args is not no_body)
)
def test_an_id_from_another_of_the_owners_projects_is_404(world, elsewhere, name, method):
    """Ada owns both projects: only the id's own project decides, and it is not this one."""
    rule = PROJECT_POLICY[name]
    url = reverse(name, kwargs={"slug": world.project.slug, **rule.args(elsewhere)})
    client = as_(world.ada)
    before = database()
    answer = send(client, method, url, rule.body(world))
    assert answer.status_code == 404
    assert changed(before) == []


# -- Sudo


@pytest.mark.parametrize(("name", "method"), cases(PROJECT_POLICY, sudo=True))
def test_without_a_recent_check_the_project_action_asks_for_sudo_and_changes_nothing(
    world, name, method
):
    rule = PROJECT_POLICY[name]
    who = world.ada if (rule.get if method == "GET" else rule.post) == OWNER else world.bob
    client = as_(who, sudo=False)
    before = database()
    answer = send(client, method, project_url(world, name), rule.body(world))
    assert prompted(answer)
    assert changed(before) == []


# -- The owners' two-factor requirement


@pytest.mark.parametrize(("name", "method"), cases(PROJECT_POLICY))
def test_where_the_project_requires_two_factor_an_owner_without_one_is_kept_out(
    world, name, method
):
    """Grace owns the project, has just signed in, and has no second factor: the
    requirement keeps her out of everything but leaving."""
    rule = PROJECT_POLICY[name]
    Project.objects.filter(pk=world.project.pk).update(require_two_factor=True)
    world.project.refresh_from_db()
    client = as_(world.grace)
    before = database()
    answer = send(client, method, project_url(world, name), rule.body(world))
    if rule.two_factor:
        assert answer.status_code == 403
        assert "accounts/two_factor_required.html" in templates(answer)
        assert changed(before) == []
    else:
        let_through(answer, before, rule, method)


# -- A confirmed email address


def unconfirmed(person: User) -> User:
    User.objects.filter(pk=person.pk).update(email_verified_at=None)
    person.refresh_from_db()
    return person


@pytest.mark.parametrize(
    ("name", "method"), cases(PROJECT_POLICY, where=lambda rule: bool(rule.verified))
)
def test_until_the_address_is_confirmed_the_project_action_waits_and_changes_nothing(
    world, name, method
):
    rule = PROJECT_POLICY[name]
    client = as_(unconfirmed(world.ada))
    before = database()
    answer = send(client, method, project_url(world, name), rule.body(world))
    if method in rule.verified:
        assert answer.status_code == 403
        assert "accounts/verify_first.html" in templates(answer)
        assert changed(before) == []
    else:
        let_through(answer, before, rule, method)


@pytest.mark.parametrize(
    ("name", "method"), cases(ACCOUNT_POLICY, where=lambda rule: bool(rule.verified))
)
def test_until_the_address_is_confirmed_the_account_action_waits_and_changes_nothing(
    world, name, method
):
    rule = ACCOUNT_POLICY[name]
    client = as_(unconfirmed(account_actor(world, rule)))
    before = database()
    answer = send(client, method, account_url(world, name), rule.body(world))
    if method in rule.verified:
        assert answer.status_code == 403
        assert "accounts/verify_first.html" in templates(answer)
        assert changed(before) == []
    else:
        let_through(answer, before, rule, method)


# -- One's own account


def account_actor(w: World, rule: Rule) -> User:
    return w.ada if rule.actor == "ada" else w.bob


@pytest.mark.parametrize(
    ("name", "method"), cases(ACCOUNT_POLICY, where=lambda rule: rule.checked_allowed)
)
def test_a_person_may_act_on_their_own_account(world, name, method):
    """With their last check of who they are past sudo's window where the method asks none."""
    rule = ACCOUNT_POLICY[name]
    client = as_(account_actor(world, rule), sudo=method in rule.sudo)
    before = database()
    answer = send(client, method, account_url(world, name), rule.body(world))
    let_through(answer, before, rule, method)


@pytest.mark.parametrize(("name", "method"), cases(ACCOUNT_POLICY, sudo=True))
def test_without_a_recent_check_the_account_action_asks_for_sudo_and_changes_nothing(
    world, name, method
):
    rule = ACCOUNT_POLICY[name]
    client = as_(account_actor(world, rule), sudo=False)
    before = database()
    answer = send(client, method, account_url(world, name), rule.body(world))
    if rule.sudo_as_json:
        assert answer.status_code == 403 and answer.json()["sudo"] is True
    else:
        assert prompted(answer)
    assert changed(before) == []


@pytest.mark.parametrize(
    ("name", "method"), cases(ACCOUNT_POLICY, where=lambda rule: rule.args is not no_body)
)
def test_another_persons_token_or_passkey_is_404(world, name, method):
    rule = ACCOUNT_POLICY[name]
    client = as_(world.bob)
    before = database()
    answer = send(client, method, account_url(world, name), rule.body(world))
    assert answer.status_code == 404
    assert changed(before) == []


@pytest.mark.parametrize(("name", "method"), cases(ACCOUNT_POLICY))
def test_signed_out_the_account_url_asks_to_sign_in(world, name, method):
    rule = ACCOUNT_POLICY[name]
    client = Client()
    before = database()
    answer = send(client, method, account_url(world, name), rule.body(world))
    assert answer.status_code == 302
    assert answer["Location"].startswith(reverse("accounts:login"))
    assert changed(before) == []
