"""Deleting one's own account: after the address is typed again and a fresh check of who
they are; their tokens, factors and sessions end, the projects they alone belong to go
with it, the others go on without them, and none is left without an owner."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.invitations import InvitationError, invitation_accept, invitation_send
from accounts.models import (
    Membership,
    Passkey,
    Project,
    RecoveryCode,
    SignedInSession,
    TotpDevice,
    User,
)
from accounts.services import (
    AccountDeletionRefused,
    NoLongerAMember,
    account_delete,
    membership_add,
    membership_set_role,
    project_create,
    project_set_two_factor_policy,
)
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.accounts.test_sudo import go_stale
from tests.conftest import (
    PASSWORD,
    Api,
    the_second_waits_for_the_first,
)

DELETE = reverse("accounts:account_delete")
INVOKE = "/v1/agents/my-agent/invoke"


@pytest.fixture
def shared(make_user, make_project, user):
    """A project of Bob's that Ada (the user) is a member of."""
    bob = make_user(email="bob@example.com")
    project = make_project(bob, name="Bob's team")
    membership_add(project=project, user=user, role=Membership.Role.MEMBER, by=bob)
    return project


def test_the_page_says_what_goes_and_what_stays(signed_in, project, shared):
    page = signed_in.get(DELETE).content.decode()
    assert "Deleted with it" in page and project.name.replace("'", "&#x27;") in page
    assert "You leave this project" in page and "Bob&#x27;s team" in page


def test_deleting_revokes_tokens_ends_sessions_and_frees_the_address(
    signed_in, user, project, shared, api_key, django_capture_on_commit_callbacks
):
    pat, secret = personal_token_create(user=user, name="CLI")
    cli = Api(Client(), secret)
    assert cli.post(INVOKE, {"prompt": "hi"}, headers={"X-Project": shared.slug}).status_code == 200
    key, key_secret = api_key

    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in.post(DELETE, {"confirm": user.email.upper()})

    assert answer.status_code == 302 and answer["Location"] == reverse("accounts:login")
    assert "_auth_user_id" not in signed_in.session
    assert cli.post(INVOKE, {"prompt": "hi"}, headers={"X-Project": shared.slug}).status_code == 401
    assert PersonalAccessToken.objects.get(pk=pat.pk).revoked_at is not None
    # Their own project went with them; Bob's goes on without them.
    assert Project.objects.get(pk=project.pk).deleted_at is not None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert Project.objects.get(pk=shared.pk).deleted_at is None
    assert not Membership.objects.filter(user=user).exists()
    assert not SignedInSession.objects.filter(user=user).exists()
    # The address can sign in no more, and is free to sign up again.
    sign_in = Client().post(
        reverse("accounts:login"), {"username": "ada@example.com", "password": PASSWORD}
    )
    assert sign_in.status_code == 200 and "_auth_user_id" not in sign_in.client.session
    assert not User.objects.filter(email="ada@example.com").exists()
    gone = User.objects.get(pk=user.pk)
    assert not gone.is_active and not gone.has_usable_password() and gone.name == ""
    assert [m.to for m in mail.outbox if "account was deleted" in m.subject] == [
        ["ada@example.com"]
    ]
    event = AuditEvent.objects.get(action="user.deleted")
    assert event.actor_email == "ada@example.com"


def test_the_only_owner_of_a_project_others_use_must_hand_it_over_first(
    signed_in, user, project, make_user
):
    cleo = make_user(email="cleo@example.com")
    membership_add(project=project, user=cleo, role=Membership.Role.MEMBER, by=user)

    page = signed_in.get(DELETE).content.decode()
    assert "you are the only owner" in page and 'name="confirm"' not in page
    refused = signed_in.post(DELETE, {"confirm": user.email})
    assert refused.status_code == 422 and "you are the only owner" in refused.content.decode()
    assert User.objects.get(pk=user.pk).is_active

    membership_set_role(
        membership=Membership.objects.get(project=project, user=cleo), role="owner", by=user
    )
    signed_in.post(DELETE, {"confirm": user.email})
    assert not User.objects.get(pk=user.pk).is_active
    assert Project.objects.get(pk=project.pk).deleted_at is None  # Cleo's now


def test_a_wrong_address_is_refused_beside_the_field(signed_in, user):
    for typed in ("", "someone@example.com", "\x00", "a" * 5000):
        answer = signed_in.post(DELETE, {"confirm": typed})
        assert answer.status_code == 422
        assert 'id="id_confirm_error"' in answer.content.decode()
    assert User.objects.get(pk=user.pk).is_active


def test_it_asks_who_you_are_when_the_last_check_is_old(signed_in, user):
    go_stale(signed_in)
    prompt = signed_in.post(DELETE, {"confirm": user.email})
    assert "Confirm it is you" in prompt.content.decode()
    assert User.objects.get(pk=user.pk).is_active


def test_second_factors_go_with_it(user, project):
    Passkey.objects.create(user=user, name="Phone", credential_id=b"x", public_key=b"y")
    TotpDevice.objects.create(user=user, secret_encrypted="x", confirmed_at=timezone.now())
    RecoveryCode.objects.create(user=user, code_hash="x")
    account_delete(user=user)
    for factor in (Passkey, TotpDevice, RecoveryCode):
        assert not factor.objects.filter(user=user).exists()


def test_the_only_owner_is_refused_by_the_service_too(user, project, make_user):
    membership_add(project=project, user=make_user(email="dan@example.com"), role="member", by=user)
    with pytest.raises(AccountDeletionRefused):
        account_delete(user=user)


def test_an_owner_who_became_the_last_one_meanwhile_is_refused_and_nothing_changes(
    user, project, make_user, monkeypatch
):
    """The plan is read before the removals; another owner leaving in between makes this
    person the last owner of a project others use: refused, as the page would have said."""
    from accounts import services

    erin, finn = make_user(email="erin@example.com"), make_user(email="finn@example.com")
    theirs = services.project_create(name="Shared", owner=erin)
    membership_add(project=theirs, user=user, role="owner", by=erin)
    membership_add(project=theirs, user=finn, role="member", by=erin)
    real_plan = services.account_deletion_plan

    def then_erin_leaves(person):
        plan = real_plan(person)
        services.membership_remove(
            membership=Membership.objects.get(project=theirs, user=erin), by=erin
        )
        return plan

    monkeypatch.setattr(services.account_deletion, "account_deletion_plan", then_erin_leaves)
    with pytest.raises(AccountDeletionRefused):
        account_delete(user=user)
    assert User.objects.get(pk=user.pk).is_active
    assert Project.objects.get(pk=project.pk).deleted_at is None


def test_a_project_someone_joined_meanwhile_is_not_deleted_with_the_account(
    user, project, make_user, monkeypatch
):
    """The plan is read before the deletions: a project that was theirs alone when it was
    read, and that someone joined since, is no longer theirs to delete."""
    from accounts import services

    real_plan = services.account_deletion_plan

    def then_someone_joins(person):
        plan = real_plan(person)
        membership_add(
            project=project, user=make_user(email="gus@example.com"), role="member", by=user
        )
        return plan

    monkeypatch.setattr(services.account_deletion, "account_deletion_plan", then_someone_joins)
    with pytest.raises(AccountDeletionRefused):
        account_delete(user=user)
    assert Project.objects.get(pk=project.pk).deleted_at is None
    assert User.objects.get(pk=user.pk).is_active


@pytest.mark.django_db(transaction=True)
def test_a_key_their_token_is_making_while_the_account_is_deleted_never_deadlocks(
    user, shared, monkeypatch
):
    """Found in review: the deletion held the person's row FOR UPDATE, which a new key
    naming them as its creator must share; the key held their membership, which the
    deletion then waited for to leave the project: a deadlock, a 500."""
    from apikeys import services as key_services

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is shown on PostgreSQL.")
    deleting_failures = the_second_waits_for_the_first(
        monkeypatch,
        key_services.api_keys,  # where api_key_create looks it up
        "agent_scope_checked",  # called once the membership is held (member_hold)
        lambda: key_services.api_key_create(project=shared, name="CI", created_by=user),
        lambda: account_delete(user=user),
    )
    assert deleting_failures == []
    assert not User.objects.get(pk=user.pk).is_active
    assert ApiKey.objects.filter(project=shared, name="CI").exists()


@pytest.mark.django_db(transaction=True)
def test_a_token_made_while_the_account_is_deleted_is_refused(user, monkeypatch):
    """Found by a review of the jobs: a PAT whose making waited for the deletion was made
    for the deleted person anyway, and kept working until it was refused as theirs; the
    reminders then wrote to their deleted address."""
    from accounts import services as account_services

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is shown on PostgreSQL.")
    making_failures = the_second_waits_for_the_first(
        monkeypatch,
        account_services.account_deletion,
        "account_deletion_plan",  # called once the person's row is held
        lambda: account_delete(user=user),
        lambda: personal_token_create(user=user, name="Made meanwhile"),
    )
    assert [type(failure) for failure in making_failures] == [PermissionDenied]
    assert not PersonalAccessToken.objects.filter(name="Made meanwhile").exists()


@pytest.mark.django_db(transaction=True)
def test_their_two_factor_policy_change_as_their_account_is_deleted_never_deadlocks(
    user, project, monkeypatch
):
    """Both hold the person's row and their membership: the policy change took the
    membership first (owner_hold), then the person's row, the deletion the other way
    round; at the same moment, a deadlock, and one of them failed (a 503). The policy
    change takes the person's row first now, waits, and finds them gone from the project."""
    from accounts import services as account_services

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the lock is shown on PostgreSQL.")
    policy_failures = the_second_waits_for_the_first(
        monkeypatch,
        account_services.account_deletion,
        "account_deletion_plan",  # called once the person's row is held
        lambda: account_delete(user=user),
        lambda: project_set_two_factor_policy(project=project, required=False, by=user),
    )
    assert [type(failure) for failure in policy_failures] == [NoLongerAMember]
    assert not User.objects.get(pk=user.pk).is_active


def test_nobody_can_sign_up_with_the_address_a_deletion_would_give_an_account(client, user):
    """An account that is deleted is kept as deleted-<id>@deleted.invalid, and ids follow
    one another: an account signed up with that address first would make the deletion
    fail on the address's unique index, and so stop its owner from ever deleting it."""
    squatted = f"deleted-{user.pk}@deleted.invalid"
    answer = client.post(
        reverse("accounts:signup"),
        {"email": squatted, "password1": "a long passphrase 1", "password2": "a long passphrase 1"},
    )

    assert answer.status_code == 200 and "email" in answer.context["form"].errors
    assert not User.objects.filter(email=squatted).exists()
    account_delete(user=user)
    assert User.objects.get(pk=user.pk).email == squatted


def test_an_account_that_took_that_address_before_it_was_refused_does_not_stop_a_deletion(
    user,
):
    squatted = f"deleted-{user.pk}@deleted.invalid"
    squatter = User.objects.create_user(email=squatted, password=PASSWORD)

    account_delete(user=user)

    gone = User.objects.get(pk=user.pk)
    assert not gone.is_active and gone.email.endswith("@deleted.invalid")
    assert User.objects.get(pk=squatter.pk).email == squatted


def test_a_request_that_began_before_the_deletion_adds_the_deleted_account_to_no_project(
    user, make_user, make_project
):
    """Accepting an invitation (as an owner, say) or creating a project in another tab,
    on a request that read the person before their deletion committed, must not make
    the deleted account a member: a project "owned" by it would let its last real owner
    leave, and leave the project with nobody who can run it."""
    bob = make_user(email="bob@example.com")
    team = make_project(bob, name="Bob's team")
    invitation = invitation_send(project=team, email=user.email, role="owner", by=bob)
    as_read_before = User.objects.get(pk=user.pk)

    account_delete(user=user)

    with pytest.raises(InvitationError):
        invitation_accept(invitation=invitation, user=as_read_before)
    with pytest.raises(PermissionDenied):
        project_create(name="Ghost town", owner=as_read_before)
    assert not Membership.objects.filter(user=user).exists()


def test_the_deletion_notice_says_when_and_from_where(user, django_capture_on_commit_callbacks):
    """Found in review: the notice asked "if you did not ask for this…" but said neither
    when nor from where, the two facts that tell its owner whether it was them."""
    import re

    with django_capture_on_commit_callbacks(execute=True):
        account_delete(user=user, ip="198.51.100.23")
    (told,) = [m for m in mail.outbox if "account was deleted" in m.subject]
    assert re.search(r"\d{2}:\d{2} UTC", told.body) and "198.51.100.23" in told.body
