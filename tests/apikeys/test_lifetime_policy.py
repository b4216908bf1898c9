"""A project's token lifetime policy and API key expiry reminders (issue 11, point 5).

Owners set the longest an API key or a PAT may live. New keys must expire within it;
keys that live longer are marked out of policy and keep working; PATs that live longer
are refused in the project on each call. Project owners are emailed 7 days and 1 day
before a key expires, once each."""

from __future__ import annotations

import importlib
import io
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project
from accounts.services import project_set_key_policy
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.reminders import send_expiry_reminders
from apikeys.services import (
    OutOfPolicy,
    api_key_create,
    personal_token_create,
    personal_token_regenerate,
)
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import HTMX, Api


def policy(project, user, keys=None, pats=None):
    project_set_key_policy(project=project, max_key_days=keys, max_pat_days=pats, by=user)
    project.refresh_from_db()


# The policy


def test_owners_set_the_policy_beside_its_fields_and_members_only_read_it(
    signed_in, project, user, make_user
):
    url = reverse("accounts:project_key_policy", args=[project.slug])
    for bad in ({"max_key_days": "²"}, {"max_key_days": "45"}, {"max_pat_days": "9999"}):
        refused = signed_in.post(url, bad)
        assert refused.status_code == 422
        field = next(iter(bad))
        assert f'id="id_{field}_error"' in refused.content.decode()
    done = signed_in.post(url, {"max_key_days": "30", "max_pat_days": "7"})
    assert done.status_code == 302
    project.refresh_from_db()
    assert (project.max_key_lifetime_days, project.max_pat_lifetime_days) == (30, 7)
    event = AuditEvent.objects.get(action="project.key_policy_changed")
    assert event.metadata["to"] == {"keys": 30, "pats": 7, "leaked": "revoke"}

    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member, role=Membership.Role.MEMBER)
    other = Client()
    other.force_login(member)
    assert other.post(url, {"max_key_days": ""}).status_code == 403
    page = other.get(reverse("accounts:project_settings", args=[project.slug]))
    assert "30 days" in page.content.decode()
    assert Project.objects.get(pk=project.pk).max_key_lifetime_days == 30


def test_a_new_key_must_expire_within_the_policy(signed_in, project, user):
    policy(project, user, keys=30)
    url = reverse("apikeys:api_key_create", args=[project.slug])
    form = signed_in.get(url, headers=HTMX)
    choices = [value for value, _ in form.context["form"].fields["expiry"].choices]
    assert "never" not in choices and "90" not in choices and "30" in choices

    base = {"name": "K", "access": "full", "form_id": form.context["form_id"]}
    refused = signed_in.post(url, {**base, "expiry": "never"}, headers=HTMX)
    assert refused.status_code == 422 and 'id="id_expiry_error"' in refused.content.decode()
    far = (timezone.now() + timedelta(days=60)).date().isoformat()
    refused = signed_in.post(url, {**base, "expiry": "date", "expires_on": far}, headers=HTMX)
    assert refused.status_code == 422
    assert "within 30 days" in refused.context["form"].errors["expires_on"][0]
    done = signed_in.post(url, {**base, "expiry": "30"}, headers=HTMX)
    assert done.status_code == 201
    assert ApiKey.objects.get(name="K").expires_at is not None

    with pytest.raises(OutOfPolicy):
        api_key_create(project=project, name="Script", created_by=None)
    with pytest.raises(CommandError, match="expires-in-days"):
        call_command("createapikey", project=project.slug, name="CLI", stdout=io.StringIO())
    # Given, but past the policy: the message says to shorten it, not to "use" it.
    with pytest.raises(CommandError, match="--expires-in-days of at most 30") as refused:
        call_command(
            "createapikey",
            project=project.slug,
            name="CLI",
            expires_in_days=40,
            stdout=io.StringIO(),
        )
    assert "Use --expires-in-days." not in str(refused.value)
    out = io.StringIO()
    call_command(
        "createapikey",
        project=project.slug,
        name="CLI",
        expires_in_days=30,
        stdout=out,
        stderr=io.StringIO(),
    )
    assert out.getvalue().startswith("reminix_sk_")


def test_keys_made_before_the_policy_are_marked_and_keep_working(
    signed_in, project, user, api, api_key
):
    policy(project, user, keys=90)
    page = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug]))
    html = page.content.decode()
    assert "1 key out of policy" in html and "out of policy</span>" in html
    assert_ok(api.post("/v1/agents/my-agent/invoke", {"prompt": "still works"}))
    policy(project, user, keys=None)
    html = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug])).content.decode()
    assert "out of policy" not in html


def test_a_pat_that_lives_longer_than_the_policy_is_refused_in_that_project(project, user):
    _, forever = personal_token_create(user=user, name="Forever")
    _, month = personal_token_create(
        user=user, name="Month", expires_at=timezone.now() + timedelta(days=30)
    )
    headers = {"X-Project": project.slug}
    assert_ok(Api(Client(), forever).get("/v1/projects/current", headers=headers))
    policy(project, user, pats=30)
    error = assert_error(
        Api(Client(), forever).get("/v1/projects/current", headers=headers),
        403,
        "insufficient_permissions",
    )
    assert "30 days" in error["message"] and "never expires" in error["message"]
    assert_ok(Api(Client(), month).get("/v1/projects/current", headers=headers))
    with pytest.raises(OutOfPolicy):
        personal_token_create(user=user, name="Another forever")


def test_an_old_pat_regenerated_within_the_policy_is_measured_from_then(project, user):
    """Regenerating gives a PAT a new secret and a new expiry, checked against every
    project's policy at that moment: a PAT made long ago is not refused for its age."""
    pat, _ = personal_token_create(user=user, name="Old", expires_at=None)
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        created_at=timezone.now() - timedelta(days=400)
    )
    pat.refresh_from_db()
    policy(project, user, pats=30)
    headers = {"X-Project": project.slug}
    renewed = personal_token_regenerate(
        personal_token=pat, by=user, expires_at=timezone.now() + timedelta(days=30)
    )
    assert_ok(Api(Client(), renewed).get("/v1/projects/current", headers=headers))
    minted = assert_ok(
        Api(Client(), renewed).post("/v1/client-tokens", {"context": {}}, headers=headers), 201
    )
    assert_ok(Api(Client(), minted["token"]).get("/client/token"))
    # A regenerate that breaks the policy is refused (OutOfPolicy) and changes nothing.
    with pytest.raises(OutOfPolicy):
        personal_token_regenerate(personal_token=pat, by=user, expires_at=None)
    assert_ok(Api(Client(), renewed).get("/v1/projects/current", headers=headers))
    # Measured from the regenerate: once the policy is shorter than that, it is refused.
    policy(project, user, pats=7)
    error = assert_error(
        Api(Client(), renewed).get("/v1/projects/current", headers=headers),
        403,
        "insufficient_permissions",
    )
    assert "7 days of being made or regenerated" in error["message"]


def test_pats_regenerated_before_the_release_get_their_regenerate_time_back(user, make_user):
    """apikeys/0024 fills regenerated_at from each PAT's newest regenerate in the audit
    trail; a PAT with none, or with one already set, is left as it is."""
    regenerated, _ = personal_token_create(user=user, name="Regenerated twice")
    personal_token_regenerate(personal_token=regenerated, by=user, expires_at=None)
    personal_token_regenerate(personal_token=regenerated, by=user, expires_at=None)
    newest = AuditEvent.objects.filter(action="personal_token.regenerated").latest("id")
    never, _ = personal_token_create(user=make_user(), name="Never regenerated")
    PersonalAccessToken.objects.update(regenerated_at=None)  # as before the release

    migration = importlib.import_module("apikeys.migrations.0024_backfill_pat_regenerated_at")
    migration.backfill(apps, SimpleNamespace(connection=connection))

    regenerated.refresh_from_db()
    never.refresh_from_db()
    assert regenerated.regenerated_at == newest.created_at
    assert regenerated.lifetime_from == newest.created_at
    assert never.regenerated_at is None and never.lifetime_from == never.created_at


def test_a_client_token_minted_by_a_pat_the_policy_now_refuses_stops_with_it(project, user):
    """The client tokens a PAT minted in the project are its reach there: when the project
    refuses the PAT, they stop too, as when its person leaves."""
    _, forever = personal_token_create(user=user, name="Forever")
    headers = {"X-Project": project.slug}
    minted = assert_ok(
        Api(Client(), forever).post("/v1/client-tokens", {"context": {}}, headers=headers), 201
    )
    browser = Api(Client(), minted["token"])
    assert_ok(browser.get("/client/token"))
    policy(project, user, pats=30)
    assert_error(browser.get("/client/token"), 401, "expired_api_key")
    policy(project, user, pats=None)
    assert_ok(browser.get("/client/token"))


def test_the_pat_form_names_the_project_whose_policy_it_breaks(signed_in, project, user):
    policy(project, user, pats=7)
    url = reverse("apikeys:personal_token_create")
    form = signed_in.get(url, headers=HTMX)
    data = {
        "name": "CLI",
        "access": "full",
        "expiry": "30",
        "reach": "all",
        "form_id": form.context["form_id"],
    }
    refused = signed_in.post(url, data, headers=HTMX)
    assert refused.status_code == 422
    assert project.name in refused.context["form"].errors["expiry"][0]
    done = signed_in.post(url, {**data, "expiry": "7"}, headers=HTMX)
    assert done.status_code == 201


# Reminders


def test_owners_are_reminded_a_week_and_a_day_before_a_key_expires_once_each(
    project, user, make_user
):
    make_user(email="member@example.com")
    key, _ = api_key_create(
        project=project,
        name="Deploy",
        created_by=user,
        expires_at=timezone.now() + timedelta(days=6),
    )
    # A name saved before names were refused line breaks (the services refuse them too).
    ApiKey.objects.filter(pk=key.pk).update(name="Deploy\nBcc: x@example.com")
    assert send_expiry_reminders().sent == 1
    assert send_expiry_reminders().sent == 0
    (week,) = mail.outbox
    assert week.to == [user.email] and "within a week" in week.subject
    assert "\n" not in week.subject and key.hint in week.body and "create a new key" in week.body

    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(hours=20))
    assert send_expiry_reminders().sent == 1
    assert send_expiry_reminders().sent == 0
    assert "tomorrow" in mail.outbox[1].subject


def test_a_key_made_with_less_than_a_day_gets_only_the_last_reminder(project, user):
    api_key_create(
        project=project,
        name="Short",
        created_by=user,
        expires_at=timezone.now() + timedelta(hours=3),
    )
    assert send_expiry_reminders().sent == 1
    assert send_expiry_reminders().sent == 0
    assert len(mail.outbox) == 1 and "tomorrow" in mail.outbox[0].subject


def test_one_keys_failed_reminder_does_not_stop_the_others(project, user, monkeypatch):
    for name in ("first", "second"):
        api_key_create(
            project=project,
            name=name,
            created_by=user,
            expires_at=timezone.now() + timedelta(days=2),
        )
    from apikeys import reminders

    real = reminders.send_mail

    def fails_once(**kwargs):
        if "first" in kwargs["subject"]:
            raise OSError("the mail server refused")
        return real(**kwargs)

    monkeypatch.setattr(reminders, "send_mail", fails_once)
    result = send_expiry_reminders()
    assert (result.sent, result.skipped) == (1, 1)
    # The failed one was not claimed: it is tried again next run.
    assert ApiKey.objects.get(name="first").expiry_week_reminder_sent_at is None
    monkeypatch.setattr(reminders, "send_mail", real)
    assert send_expiry_reminders().sent == 1


def test_a_mailbox_whose_mail_hangs_costs_a_run_one_timeout_not_one_per_token(
    project, user, make_user, monkeypatch
):
    """A mail server that hangs on one tenant's address answers each reminder to it after
    EMAIL_TIMEOUT: its keys' and its personal tokens' each, and every other tenant's
    reminders waited behind them all. Once timed out, an address is not tried again in
    the run; its reminders are left unclaimed for the next."""
    soon = timezone.now() + timedelta(days=2)
    for n in range(3):
        api_key_create(project=project, name=f"Key {n}", created_by=user, expires_at=soon)
        pat, _ = personal_token_create(user=user, name=f"CLI {n}")
        PersonalAccessToken.objects.filter(pk=pat.pk).update(expires_at=soon)
    other_owner = make_user(email="other-owner@example.com")
    theirs = Project.objects.for_user(other_owner).get()
    api_key_create(project=theirs, name="Theirs", created_by=other_owner, expires_at=soon)
    from apikeys import reminders

    real_send = reminders.send_mail
    waited_for = []

    def hangs_for_mine(**kwargs):
        if kwargs["recipient_list"] == [user.email]:
            waited_for.append(kwargs["subject"])
            raise TimeoutError("timed out")  # as smtplib does, after EMAIL_TIMEOUT
        return real_send(**kwargs)

    monkeypatch.setattr(reminders, "send_mail", hangs_for_mine)
    result = send_expiry_reminders()

    assert len(waited_for) == 1
    assert [m.to for m in mail.outbox] == [[other_owner.email]]
    assert (result.sent, result.skipped) == (1, 6)
    assert not ApiKey.objects.filter(project=project, expiry_week_reminder_sent_at__isnull=False)
    assert not PersonalAccessToken.objects.filter(expiry_reminder_sent_at__isnull=False)


def test_a_project_without_owners_keeps_its_reminder_for_when_it_has_one(project, user):
    """Found in review: the reminder was claimed, and so lost, with nobody to send it to."""
    key, _ = api_key_create(
        project=project, name="K", created_by=user, expires_at=timezone.now() + timedelta(days=3)
    )
    Membership.objects.filter(project=project).update(role=Membership.Role.MEMBER)
    assert send_expiry_reminders().sent == 0
    assert ApiKey.objects.get(pk=key.pk).expiry_week_reminder_sent_at is None
    Membership.objects.filter(project=project).update(role=Membership.Role.OWNER)
    assert send_expiry_reminders().sent == 1
