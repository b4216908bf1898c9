"""Members leave, owners change roles and hand a project over; a project keeps an owner."""

import pytest
from django.urls import reverse

from accounts.models import Membership
from audit.models import AuditEvent


def test_a_member_leaves_a_project_and_loses_it(client, project, make_user):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    response = client.post(reverse("accounts:project_leave", args=[project.slug]))
    assert response.status_code == 302
    assert not Membership.objects.filter(project=project, user=member).exists()
    assert client.get(reverse("overview:project_overview", args=[project.slug])).status_code == 404
    assert AuditEvent.objects.filter(action="membership.left", actor=member).exists()


def test_the_last_owner_cannot_leave(signed_in, project, user):
    response = signed_in.post(reverse("accounts:project_leave", args=[project.slug]), follow=True)
    assert Membership.objects.filter(project=project, user=user, role="owner").exists()
    assert "at least one owner" in response.content.decode()


def test_an_owner_makes_a_member_an_owner_and_back(signed_in, project, make_user):
    bob = make_user(email="bob@example.com")
    m = Membership.objects.create(project=project, user=bob)
    url = reverse("accounts:project_member_role", args=[project.slug, m.pk])
    promoted = signed_in.post(url, {"role": "owner"}, follow=True)
    assert Membership.objects.get(pk=m.pk).role == "owner"
    assert "bob@example.com is now owner." in promoted.content.decode()
    signed_in.post(url, {"role": "member"})
    assert Membership.objects.get(pk=m.pk).role == "member"
    event = AuditEvent.objects.filter(action="membership.role_changed").first()
    assert event is not None and event.metadata == {"from": "owner", "to": "member"}


def test_the_last_owner_cannot_be_demoted_and_a_bad_role_changes_nothing(signed_in, project, user):
    own = Membership.objects.get(project=project, user=user)
    url = reverse("accounts:project_member_role", args=[project.slug, own.pk])
    response = signed_in.post(url, {"role": "member"}, follow=True)
    assert "at least one owner" in response.content.decode()
    for odd in ("emperor", "", "owner\x00", "²"):
        signed_in.post(url, {"role": odd})
    assert Membership.objects.get(pk=own.pk).role == "owner"


def test_a_member_cannot_change_roles(client, project, make_user, user):
    member = make_user(email="member@example.com")
    m = Membership.objects.create(project=project, user=member)
    client.force_login(member)
    url = reverse("accounts:project_member_role", args=[project.slug, m.pk])
    assert client.post(url, {"role": "owner"}).status_code == 403
    assert Membership.objects.get(pk=m.pk).role == "member"


def test_an_owner_transfers_ownership_in_one_step(signed_in, project, make_user, user):
    bob = make_user(email="bob@example.com")
    m = Membership.objects.create(project=project, user=bob)
    signed_in.post(reverse("accounts:project_transfer", args=[project.slug, m.pk]))
    assert Membership.objects.get(pk=m.pk).role == "owner"
    assert Membership.objects.get(project=project, user=user).role == "member"
    assert AuditEvent.objects.filter(action="membership.ownership_transferred").exists()


def test_a_membership_of_another_project_is_404_for_role_and_transfer(
    signed_in, project, make_user
):
    foreign = Membership.objects.get(user=make_user(email="x@example.com"))
    for name in ("accounts:project_member_role", "accounts:project_transfer"):
        url = reverse(name, args=[project.slug, foreign.pk])
        response = signed_in.post(url, {"role": "member"})
        assert response.status_code == 404
    assert Membership.objects.get(pk=foreign.pk).role == "owner"


def test_an_owner_who_just_handed_over_cannot_hand_over_again(signed_in, project, make_user, user):
    """A double click: the second request comes from someone who is no longer an owner."""
    bob = Membership.objects.create(project=project, user=make_user(email="bob@example.com"))
    dan = Membership.objects.create(project=project, user=make_user(email="dan@example.com"))
    signed_in.post(reverse("accounts:project_transfer", args=[project.slug, bob.pk]))
    response = signed_in.post(reverse("accounts:project_transfer", args=[project.slug, dan.pk]))
    assert response.status_code == 403
    assert Membership.objects.get(pk=dan.pk).role == "member"


def test_a_stale_owner_cannot_act_through_the_services(project, make_user, user):
    from accounts.services import MembershipError, membership_set_role, project_transfer_ownership

    bob = Membership.objects.create(project=project, user=make_user(email="bob@example.com"))
    dan = Membership.objects.create(project=project, user=make_user(email="dan@example.com"))
    mine = Membership.objects.get(project=project, user=user)
    stale = Membership.objects.get(pk=mine.pk)
    project_transfer_ownership(project=project, to=bob, by=mine)
    with pytest.raises(MembershipError):
        project_transfer_ownership(project=project, to=dan, by=stale)
    with pytest.raises(MembershipError):
        membership_set_role(membership=dan, role="owner", by=user)
    assert Membership.objects.get(pk=dan.pk).role == "member"


def test_a_member_removed_meanwhile_is_a_clear_refusal_not_a_500(project, make_user, user):
    from accounts.services import MembershipError, membership_set_role

    bob = Membership.objects.create(project=project, user=make_user(email="bob@example.com"))
    Membership.objects.filter(pk=bob.pk).delete()
    with pytest.raises(MembershipError, match="no longer a member"):
        membership_set_role(membership=bob, role="owner", by=user)
