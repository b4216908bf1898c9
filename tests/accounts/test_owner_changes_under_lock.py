"""What an owner changes is checked, under the owners' lock, when it is written
(accounts.services.owner_hold), not only when the request began: once another owner's
demotion or removal of them commits, nothing they asked for as an owner commits after it,
and a request of theirs on its way gets the refusal their next one would."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from accounts.invitations import invitation_revoke, invitation_send
from accounts.models import Invitation, Membership, Project, User
from accounts.services import (
    NOT_A_MEMBER,
    NOT_AN_OWNER,
    NoLongerAMember,
    NotAnOwner,
    membership_add,
    membership_remove,
    membership_set_role,
    project_rename,
    project_set_allowed_origins,
    project_set_key_policy,
    project_set_two_factor_policy,
    project_transfer_ownership,
)
from alerts.rules import SWITCHABLE
from alerts.services import alert_rules_set
from apikeys.services import api_keys_transfer_from_leavers
from audit.models import AuditEvent
from tests.conftest import another_connection, commit_once_it_waits
from webhooks.models import WebhookDelivery
from webhooks.services import (
    delivery_retry_now,
    webhook_create,
    webhook_delete,
    webhook_disable,
    webhook_send_test,
)

CONCURRENT = "SQLite serialises all writers: the lock is shown on PostgreSQL."


@pytest.fixture
def grace(project, make_user) -> User:
    """A second owner of the project."""
    other = make_user(email="grace@example.com", name="Grace")
    Membership.objects.create(project=project, user=other, role=Membership.Role.OWNER)
    return other


def _webhook(project: Project, by: User):
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/reminix",
        format="generic",
        min_severity="low",
        created_by=by,
    )
    return endpoint


def _failed_delivery(project: Project, by: User) -> WebhookDelivery:
    delivery = webhook_send_test(endpoint=_webhook(project, by), by=by)
    assert delivery is not None
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status=WebhookDelivery.Status.FAILED)
    return delivery


# Each owner-only service asked of `me` (what it acts on is made first, by `other`, an
# owner): the call, to make once `me` is no longer an owner.
type Call = Callable[[], object]


def _rename(p: Project, me: User, other: User) -> Call:
    return lambda: project_rename(project=p, name="Mine now", by=me)


def _origins(p: Project, me: User, other: User) -> Call:
    return lambda: project_set_allowed_origins(
        project=p, origins=["https://app.example.com"], by=me
    )


def _key_policy(p: Project, me: User, other: User) -> Call:
    return lambda: project_set_key_policy(project=p, max_key_days=30, max_pat_days=30, by=me)


def _two_factor_policy(p: Project, me: User, other: User) -> Call:
    return lambda: project_set_two_factor_policy(project=p, required=False, by=me)


def _invite(p: Project, me: User, other: User) -> Call:
    return lambda: invitation_send(project=p, email="friend@example.com", role="owner", by=me)


def _withdraw(p: Project, me: User, other: User) -> Call:
    invitation = invitation_send(project=p, email="x@example.com", role="member", by=other)
    return lambda: invitation_revoke(invitation=invitation, by=me)


def _add_member(p: Project, me: User, other: User) -> Call:
    friend = User.objects.create_user("friend@example.com")
    return lambda: membership_add(project=p, user=friend, role="owner", by=me)


def _add_webhook(p: Project, me: User, other: User) -> Call:
    return lambda: _webhook(p, me)


def _disable_webhook(p: Project, me: User, other: User) -> Call:
    endpoint = _webhook(p, other)
    return lambda: webhook_disable(endpoint=endpoint, by=me)


def _delete_webhook(p: Project, me: User, other: User) -> Call:
    endpoint = _webhook(p, other)
    return lambda: webhook_delete(endpoint=endpoint, by=me)


def _test_webhook(p: Project, me: User, other: User) -> Call:
    endpoint = _webhook(p, other)
    return lambda: webhook_send_test(endpoint=endpoint, by=me)


def _retry_delivery(p: Project, me: User, other: User) -> Call:
    delivery = _failed_delivery(p, other)
    return lambda: delivery_retry_now(delivery=delivery, by=me)


def _alert_rules(p: Project, me: User, other: User) -> Call:
    return lambda: alert_rules_set(project=p, values={}, off=[SWITCHABLE[0]], by=me)


def _hand_over_keys(p: Project, me: User, other: User) -> Call:
    return lambda: api_keys_transfer_from_leavers(project=p, to=other, by=me)


def _hand_over(p: Project, me: User, other: User) -> Call:
    to, by = (Membership.objects.get(project=p, user=u) for u in (other, me))
    return lambda: project_transfer_ownership(project=p, to=to, by=by)


OWNER_CHANGES: dict[str, Callable[[Project, User, User], Call]] = {
    "rename": _rename,
    "origins": _origins,
    "key policy": _key_policy,
    "two-factor policy": _two_factor_policy,
    "invite": _invite,
    "withdraw an invitation": _withdraw,
    "add a member": _add_member,
    "add a webhook": _add_webhook,
    "disable a webhook": _disable_webhook,
    "delete a webhook": _delete_webhook,
    "test a webhook": _test_webhook,
    "retry a delivery": _retry_delivery,
    "alert rules": _alert_rules,
    "hand over keys": _hand_over_keys,
    "hand over the project": _hand_over,  # last: after it, `me` is no owner
}


@pytest.mark.parametrize("how", ["demoted", "removed"])
@pytest.mark.parametrize("change", OWNER_CHANGES)
def test_no_owner_only_service_acts_for_someone_no_longer_an_owner(
    project, user, grace, change, how
):
    # Required, so that the two-factor policy's call would change something.
    Project.objects.filter(pk=project.pk).update(require_two_factor=True)
    project.refresh_from_db()
    call = OWNER_CHANGES[change](project, user, grace)
    mine = Membership.objects.get(project=project, user=user)
    if how == "demoted":
        membership_set_role(membership=mine, role="member", by=grace)
    else:
        membership_remove(membership=mine, by=grace)
    written = AuditEvent.objects.count()
    # Demoted: a member, told so (403 on the pages). Removed: the project is gone to them
    # (404), as it is to their next request.
    refusal, message = (
        (NotAnOwner, NOT_AN_OWNER) if how == "demoted" else (NoLongerAMember, NOT_A_MEMBER)
    )
    with pytest.raises(refusal, match=message):
        call()
    assert AuditEvent.objects.count() == written  # nothing of it was kept
    project.refresh_from_db()
    assert project.name != "Mine now" and project.require_two_factor


def test_an_owner_can_still_do_each_of_them(project, user, grace):
    """The same calls, by an owner, go through (the refusals above are not of the calls)."""
    Project.objects.filter(pk=project.pk).update(require_two_factor=True)
    project.refresh_from_db()
    for change in OWNER_CHANGES.values():
        change(project, user, grace)()
    assert Membership.objects.get(project=project, user=grace).role == "owner"


def test_a_page_that_passed_its_owner_check_before_the_demotion_refuses_as_the_next_would(
    signed_in, project, user, grace, monkeypatch
):
    """The demotion commits after the page checked the role, before the change is written:
    the owners' pages answer 403, as they do to a member; the settings page says so."""
    import accounts.views.projects

    mine = Membership.objects.get(project=project, user=user)
    real = accounts.views.projects.project_set_allowed_origins

    def demoted_first(**kwargs):
        membership_set_role(membership=mine, role="member", by=grace)
        return real(**kwargs)

    monkeypatch.setattr(accounts.views.projects, "project_set_allowed_origins", demoted_first)
    origins = reverse("accounts:project_origins", args=[project.slug])
    answer = signed_in.post(origins, {"origins": "https://app.example.com"})
    assert answer.status_code == 403
    assert project.allowed_origins == []

    membership_set_role(membership=mine, role="owner", by=grace)
    real_rename = accounts.views.projects.project_rename

    def demoted_before_renaming(**kwargs):
        membership_set_role(membership=mine, role="member", by=grace)
        return real_rename(**kwargs)

    monkeypatch.setattr(accounts.views.projects, "project_rename", demoted_before_renaming)
    settings_page = reverse("accounts:project_settings", args=[project.slug])
    answer = signed_in.post(settings_page, {"name": "Mine now"}, follow=True)
    assert "Only a project owner can rename the project." in answer.content.decode()
    project.refresh_from_db()
    assert project.name != "Mine now"


def test_a_page_that_passed_its_owner_check_before_the_owners_removal_is_404(
    signed_in, project, user, grace, monkeypatch
):
    """Removed meanwhile: the project's pages are 404 to them from now on, this answer
    too (a 403 would tell a non-member the project is there)."""
    import accounts.views.projects

    real = accounts.views.projects.project_set_allowed_origins

    def removed_first(**kwargs):
        mine = Membership.objects.get(project=project, user=user)
        membership_remove(membership=mine, by=grace)
        return real(**kwargs)

    monkeypatch.setattr(accounts.views.projects, "project_set_allowed_origins", removed_first)
    origins = reverse("accounts:project_origins", args=[project.slug])
    answer = signed_in.post(origins, {"origins": "https://app.example.com"})
    assert answer.status_code == 404
    assert project.allowed_origins == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("page", "data"),
    [
        ("accounts:project_settings", {"name": "Mine now"}),
        ("accounts:project_origins", {"origins": "https://app.example.com"}),
        (
            "accounts:project_key_policy",
            {"max_key_days": "30", "max_pat_days": "", "leaked_key_action": "report"},
        ),
        ("accounts:project_invitation_send", {"email": "friend@example.com", "role": "owner"}),
    ],
)
def test_an_owners_request_on_its_way_waits_for_their_demotion_and_is_refused(
    project, user, grace, page, data
):
    """Another owner's demotion of this one has taken the owners' rows and not committed
    yet; the owner's request arrives (its role still reads "owner"), waits for the
    demotion at the lock, and once that commits is refused: nothing of it is written."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    mine = Membership.objects.get(project=project, user=user)
    browser = Client()
    browser.force_login(user)
    answers = []
    written = AuditEvent.objects.count()
    with another_connection() as other:
        other.execute("UPDATE accounts_membership SET role = 'member' WHERE id = %s", [mine.pk])
        waited = commit_once_it_waits(
            other,
            lambda: answers.append(browser.post(reverse(page, args=[project.slug]), data)),
        )
    assert waited
    [answer] = answers
    if page == "accounts:project_settings":
        assert answer.status_code == 302
        shown = browser.get(answer.url).content.decode()
        assert "Only a project owner can rename the project." in shown
    else:
        assert answer.status_code == 403
    assert AuditEvent.objects.count() == written
    project.refresh_from_db()
    assert project.name != "Mine now" and project.max_key_lifetime_days is None
    assert not Invitation.objects.filter(project=project).exists()
