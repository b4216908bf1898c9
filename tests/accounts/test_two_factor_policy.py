"""An owner's policy that every member has a second factor: members without one see only
the page asking for it; their API keys keep working; the owner must have one to set it."""

from __future__ import annotations

import re
import threading
from html import unescape

import pyotp
import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, TotpDevice
from alerts.models import Flag
from audit.models import AuditEvent
from tests.accounts.test_two_factor import enrol
from tests.conftest import Api


def policy_url(project) -> str:
    return reverse("accounts:project_two_factor_policy", args=[project.slug])


def test_an_owner_without_a_second_factor_cannot_require_one(signed_in, project):
    answer = signed_in.post(policy_url(project), {"require_two_factor": "on"})
    assert answer.status_code == 422
    assert "Turn on two-factor authentication for your own account first" in answer.content.decode()
    project.refresh_from_db()
    assert not project.require_two_factor


def test_members_without_one_see_only_the_setup_page_and_their_keys_still_work(
    signed_in, project, make_user, make_key
):
    enrol(signed_in)
    member = make_user("mo@example.com")
    Membership.objects.create(project=project, user=member, role="member")
    key, secret = make_key(project)
    assert signed_in.post(policy_url(project), {"require_two_factor": "on"}).status_code == 302
    project.refresh_from_db()
    assert project.require_two_factor
    assert AuditEvent.objects.filter(action="project.two_factor_policy_changed").exists()

    other = Client()
    other.force_login(member)
    for url in (
        reverse("overview:project_overview", args=[project.slug]),
        reverse("apikeys:api_key_list", args=[project.slug]),
        reverse("apikeys:api_key_create", args=[project.slug]),
        reverse("usage:project_calls", args=[project.slug]),
    ):
        answer = other.get(url)
        assert answer.status_code == 403, url
        assert "requires it" in answer.content.decode()
    # The owner (who has a second factor) works as before, and so does the API.
    assert signed_in.get(reverse("apikeys:api_key_list", args=[project.slug])).status_code == 200
    headers = {"X-Project": project.slug}
    assert Api(Client(), secret).get("/v1/projects/current", headers=headers).status_code == 200
    # With a second factor of their own, the member is back in.
    other.post(reverse("accounts:totp_setup"))
    page = other.get(reverse("accounts:account_security")).content.decode()
    seed = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    other.post(reverse("accounts:totp_confirm"), {"code": pyotp.TOTP(seed).now()})
    assert other.get(reverse("apikeys:api_key_list", args=[project.slug])).status_code == 200


def test_a_member_without_one_may_leave_instead(signed_in, project, make_user):
    # The requirement kept them out of every page of the project, leaving included.
    enrol(signed_in)
    member = make_user("mo@example.com")
    Membership.objects.create(project=project, user=member, role="member")
    signed_in.post(policy_url(project), {"require_two_factor": "on"})
    other = Client()
    other.force_login(member)
    asked = other.get(reverse("overview:project_overview", args=[project.slug])).content.decode()
    leave = reverse("accounts:project_leave", args=[project.slug])
    assert f'action="{leave}"' in asked
    # Only leaving: every other form of the project still answers with the setup page.
    invite = other.post(reverse("accounts:project_invitation_send", args=[project.slug]))
    assert invite.status_code == 403 and "requires it" in invite.content.decode()
    answer = other.post(leave)
    assert answer.status_code == 302 and answer["Location"] == "/"
    assert not Membership.objects.filter(project=project, user=member).exists()
    # The owner is offered no such way out: they set the policy, and have a second factor.
    owner_page = signed_in.get(reverse("overview:project_overview", args=[project.slug]))
    assert f'action="{leave}"'.encode() not in owner_page.content


def test_the_setup_page_shows_none_of_the_projects_tabs_nor_its_open_alerts(
    signed_in, project, make_user
):
    # "Only the page asking them to set one up": the project's tabs, and on them how many
    # alerts are open, are what the requirement keeps from a member without a factor.
    enrol(signed_in)
    member = make_user("mo@example.com")
    Membership.objects.create(project=project, user=member, role="member")
    signed_in.post(policy_url(project), {"require_two_factor": "on"})
    now = timezone.now()
    for n in range(3):
        Flag.objects.create(
            project=project,
            kind=Flag.Kind.ENDED_TOKEN_USED,
            severity="high",
            dedupe_key=f"open:{n}",
            summary="Revoked key tried",
            first_seen=now,
            last_seen=now,
        )
    other = Client()
    other.force_login(member)
    for url in (
        reverse("overview:project_overview", args=[project.slug]),
        reverse("alerts:flag_list", args=[project.slug]),
    ):
        asked = other.get(url)
        html = asked.content.decode()
        assert asked.status_code == 403 and "requires it" in html, url
        assert 'aria-label="3 open"' not in html, url
        assert reverse("apikeys:api_key_list", args=[project.slug]) not in html, url
        assert reverse("usage:project_usage", args=[project.slug]) not in html, url
    # The owner, who has a second factor, sees them.
    owner_page = signed_in.get(reverse("overview:project_overview", args=[project.slug]))
    assert 'aria-label="3 open"' in owner_page.content.decode()


def test_a_member_cannot_set_the_policy_and_other_projects_are_not_found(
    project, make_user, make_project
):
    member = make_user("mo@example.com")
    Membership.objects.create(project=project, user=member, role="member")
    client = Client()
    client.force_login(member)
    assert client.post(policy_url(project), {"require_two_factor": "on"}).status_code == 403
    elsewhere = make_project(make_user("zed@example.com"))
    assert client.post(policy_url(elsewhere), {"require_two_factor": "on"}).status_code == 404


def test_a_pat_of_a_member_without_a_second_factor_is_refused_in_that_project(
    signed_in, project, make_user, make_project
):
    from apikeys.services import personal_token_create

    enrol(signed_in)
    member = make_user("mo@example.com")
    Membership.objects.create(project=project, user=member, role="member")
    pat, secret = personal_token_create(user=member, name="CLI", expires_at=None)
    api = Api(Client(), secret)
    headers = {"X-Project": project.slug}
    assert api.get("/v1/projects/current", headers=headers).status_code == 200
    signed_in.post(policy_url(project), {"require_two_factor": "on"})
    refused = api.get("/v1/projects/current", headers=headers)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_permissions"
    assert "requires two-factor authentication" in refused.json()["error"]["message"]
    made = api.post("/v1/api-keys", {"name": "made without 2fa"}, headers=headers)
    assert made.status_code == 403
    # Another project of theirs without the policy still answers.
    own = make_project(member, name="Mo's own")
    assert api.get("/v1/projects/current", headers={"X-Project": own.slug}).status_code == 200
    # Someone who is not a member learns nothing about the policy.
    stranger_pat, stranger = personal_token_create(
        user=make_user("zed@example.com"), name="x", expires_at=None
    )
    answer = Api(Client(), stranger).get("/v1/projects/current", headers=headers)
    assert answer.status_code == 403 and "two-factor" not in answer.json()["error"]["message"]


def _require_two_factor(client, project) -> None:
    answer = client.post(policy_url(project), {"require_two_factor": "on"})
    assert answer.status_code == 302
    project.refresh_from_db()
    assert project.require_two_factor


def test_the_last_second_factor_cannot_be_removed_while_a_project_requires_one(
    signed_in, project, user
):
    from accounts.models import Passkey, TotpDevice

    enrol(signed_in)
    _require_two_factor(signed_in, project)
    answer = signed_in.post(reverse("accounts:totp_remove"), follow=True)
    html = answer.content.decode()
    assert "Not removed: it is your last second factor" in html
    assert unescape(html).count(f"“{project.name}”") == 1
    assert TotpDevice.objects.filter(user=user).exists()
    assert not AuditEvent.objects.filter(action="user.two_factor_disabled").exists()

    # With a passkey beside it, the app can go; the passkey, now the last, cannot.
    passkey = Passkey.objects.create(
        user=user, credential_id="B" * 43, public_key=b"k", user_handle=b"h", name="Laptop"
    )
    signed_in.post(reverse("accounts:totp_remove"))
    assert not TotpDevice.objects.filter(user=user).exists()
    answer = signed_in.post(reverse("accounts:passkey_remove", args=[passkey.pk]), follow=True)
    assert "Not removed: it is your last second factor" in answer.content.decode()
    assert Passkey.objects.filter(pk=passkey.pk).exists()


def test_without_a_project_that_requires_one_the_last_factor_can_go(signed_in, user):
    from accounts.models import TotpDevice

    enrol(signed_in)
    signed_in.post(reverse("accounts:totp_remove"))
    assert not TotpDevice.objects.filter(user=user).exists()


def test_the_policy_and_its_audit_event_are_one_write(project, user, monkeypatch):
    """An audit event that cannot be written takes the change with it."""
    import accounts.services.project_settings
    from accounts.services import project_set_two_factor_policy
    from accounts.two_factor import enrolment_start

    enrolment_start(user)
    TotpDevice.objects.filter(user=user).update(confirmed_at=timezone.now())

    def audit_fails(**kwargs):
        raise RuntimeError("the audit table is unavailable")

    monkeypatch.setattr(accounts.services.project_settings, "audit_record", audit_fails)
    with pytest.raises(RuntimeError):
        project_set_two_factor_policy(project=project, required=True, by=user)
    project.refresh_from_db()
    assert not project.require_two_factor


@pytest.mark.django_db(transaction=True)
def test_an_owner_cannot_drop_their_last_factor_while_requiring_one(project, user, monkeypatch):
    """The owner turns the policy on in one tab (its check of their own second factor has
    passed) while removing that factor in another: one of the two must lose, or the owner
    is locked out of the project they just locked."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    import accounts.services.project_settings
    from accounts.services import project_set_two_factor_policy
    from accounts.two_factor import (
        SecondFactorRequiredError,
        enrolment_start,
        has_two_factor,
        two_factor_remove,
    )

    enrolment_start(user)
    TotpDevice.objects.filter(user=user).update(confirmed_at=timezone.now())
    checked, removed = threading.Event(), threading.Event()
    real_check = accounts.services.project_settings.has_two_factor

    def check_then_wait(person):
        answer = real_check(person)
        checked.set()
        removed.wait(timeout=1)  # the removal gets its chance here (or waits for this one)
        return answer

    monkeypatch.setattr(accounts.services.project_settings, "has_two_factor", check_then_wait)
    outcomes: dict[str, object] = {}

    def require() -> None:
        try:
            outcomes["policy"] = project_set_two_factor_policy(
                project=project, required=True, by=user
            )
        finally:
            connection.close()

    def remove() -> None:
        try:
            checked.wait(timeout=10)
            outcomes["removed"] = two_factor_remove(user, ip=None)
        except SecondFactorRequiredError as refused:
            outcomes["removed"] = refused
        finally:
            removed.set()
            connection.close()

    threads = [threading.Thread(target=require), threading.Thread(target=remove)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    project.refresh_from_db()
    assert project.require_two_factor and outcomes["policy"] is True
    assert isinstance(outcomes["removed"], SecondFactorRequiredError)
    assert has_two_factor(user)


def test_a_session_signed_in_before_the_member_had_a_second_factor_does_not_pass_the_policy(
    signed_in, project, make_user
):
    """A session signed in with the password alone, before the member had a second factor
    (a password that leaked): once the member sets one up, that session would pass the
    owners' policy without ever having been asked for it. Turning on a first second
    factor signs the other sessions out, as a new password does."""
    enrol(signed_in)
    member = make_user("mo@example.com")
    Membership.objects.create(project=project, user=member, role="member")
    leaked, own = Client(), Client()
    leaked.force_login(member)
    own.force_login(member)
    assert signed_in.post(policy_url(project), {"require_two_factor": "on"}).status_code == 302
    overview = reverse("overview:project_overview", args=[project.slug])
    assert leaked.get(overview).status_code == 403
    enrol(own)
    assert own.get(overview).status_code == 200
    assert leaked.get(overview)["Location"].startswith(reverse("accounts:login"))
    assert AuditEvent.objects.filter(action="user.signed_out_elsewhere", actor=member).exists()
