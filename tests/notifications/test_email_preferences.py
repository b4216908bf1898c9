"""Issue 14, point 6: each person chooses, per project, whether they get its high-severity
alert emails and its API key expiry reminders. Owners get both until they choose, other
members neither; the senders honour each choice, send each person a message of their own,
and one recipient's failure never stops the others'."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from unittest.mock import Mock

import pytest
from django.core import mail
from django.core.mail.backends import locmem
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Passkey, Project, TotpDevice, User
from alerts import detection
from alerts.detection import detect
from apikeys import reminders
from apikeys.models import ApiKey
from apikeys.reminders import send_expiry_reminders
from apikeys.services import api_key_create
from audit.models import AuditEvent
from notifications.models import NotificationPreference
from notifications.services import Choice, notification_preferences_set
from tests.alerts.test_detection_isolation import NOW, revoked_key_tried
from usage.writer import usage_write

URL = reverse("notifications:preferences")


@pytest.fixture
def team(project: Project, user: User, make_user) -> dict[str, User]:
    """Ada (owner, from sign-up), Grace (a second owner) and Mel (a member)."""
    grace = make_user(email="grace@example.com")
    mel = make_user(email="mel@example.com")
    Membership.objects.create(user=grace, project=project, role=Membership.Role.OWNER)
    Membership.objects.create(user=mel, project=project, role=Membership.Role.MEMBER)
    return {"ada": user, "grace": grace, "mel": mel}


def choose(person: User, project: Project, *, alerts: bool, expiry: bool) -> None:
    membership = Membership.objects.get(user=person, project=project)
    notification_preferences_set(
        user=person, choices={membership.pk: Choice(alert_emails=alerts, expiry_emails=expiry)}
    )


def alert_raised(project: Project, api_key: ApiKey) -> None:
    api_key.revoke(by=None)
    usage_write([revoked_key_tried(api_key)])
    detect(now=NOW)


def expiring_key(project: Project, user: User) -> ApiKey:
    key, _ = api_key_create(
        project=project,
        name="Deploy",
        created_by=user,
        expires_at=timezone.now() + timedelta(days=3),
    )
    return key


def recipients() -> list[list[str]]:
    return sorted(m.to for m in mail.outbox)


# -- The page -------------------------------------------------------------------------------


def test_the_page_lists_your_projects_with_the_defaults_of_your_role(
    signed_in, project, team, make_user, make_project
):
    make_project(team["mel"], name="Mel's own")
    make_project(make_user(email="stranger@example.com"), name="Not yours")
    signed_in.force_login(team["mel"])
    html = signed_in.get(URL).content.decode()
    assert "Ada&#x27;s project" in html and "Mel&#x27;s own" in html and "Not yours" not in html
    own = Membership.objects.get(user=team["mel"], project__name="Mel's own")
    shared = Membership.objects.get(user=team["mel"], project=project)
    assert f'name="alerts_{own.pk}" id="id_alerts_{own.pk}" checked' in html  # an owner there
    assert f'name="alerts_{shared.pk}" id="id_alerts_{shared.pk}">' in html  # a member here


def test_saving_is_audited_per_project_that_changed_and_nothing_else(signed_in, project, user):
    membership = Membership.objects.get(user=user, project=project)
    response = signed_in.post(URL, {f"expiry_{membership.pk}": "on"})  # alerts unticked
    assert response.status_code == 302
    event = AuditEvent.objects.get(action="notifications.preferences_changed")
    assert (event.actor, event.project, event.metadata) == (
        user,
        project,
        {"alert_emails": [True, False]},
    )
    pref = NotificationPreference.objects.get(membership=membership)
    # Only what differs from the owner's default is kept as a choice.
    assert (pref.alert_emails, pref.expiry_emails) == (False, None)

    signed_in.post(URL, {f"expiry_{membership.pk}": "on"})
    assert AuditEvent.objects.filter(action="notifications.preferences_changed").count() == 1


def test_boxes_for_someone_elses_membership_are_ignored(signed_in, project, team):
    theirs = Membership.objects.get(user=team["mel"], project=project)
    signed_in.post(URL, {f"alerts_{theirs.pk}": "on", f"expiry_{theirs.pk}": "on"})
    assert not NotificationPreference.objects.filter(membership=theirs).exists()
    choice = Choice(alert_emails=True, expiry_emails=True)
    assert notification_preferences_set(user=team["ada"], choices={theirs.pk: choice}) == 0
    assert not NotificationPreference.objects.filter(membership=theirs).exists()


def test_the_page_needs_a_signed_in_person(client):
    response = client.get(URL)
    assert response.status_code == 302 and "login" in response["Location"]


# -- Alert emails ---------------------------------------------------------------------------


def test_owners_get_alert_emails_and_members_do_not_until_they_choose(project, team, api_key):
    alert_raised(project, api_key[0])
    assert recipients() == [["ada@example.com"], ["grace@example.com"]]


def test_an_owner_who_opted_out_gets_no_alert_email_and_the_others_still_do(project, team, api_key):
    choose(team["grace"], project, alerts=False, expiry=True)
    choose(team["mel"], project, alerts=True, expiry=False)
    alert_raised(project, api_key[0])
    assert recipients() == [["ada@example.com"], ["mel@example.com"]]
    # Each their own message: nobody learns the others' addresses.
    assert all(m.cc == [] and m.bcc == [] for m in mail.outbox)
    assert "/account/notifications/" in mail.outbox[0].body


def test_a_project_that_requires_two_factor_mails_only_members_who_have_one(
    project, team, api_key, user
):
    TotpDevice.objects.create(user=user, secret_encrypted="x", confirmed_at=timezone.now())
    Passkey.objects.create(user=team["mel"], credential_id="c1", public_key=b"k", user_handle=b"h")
    choose(team["mel"], project, alerts=True, expiry=True)
    # Grace has no second factor: she cannot open the project's pages, nor get its mail.
    project.require_two_factor = True
    project.save(update_fields=["require_two_factor"])
    alert_raised(project, api_key[0])
    assert recipients() == [["ada@example.com"], ["mel@example.com"]]
    mail.outbox.clear()
    expiring_key(project, user)
    send_expiry_reminders()
    assert recipients() == [["ada@example.com"], ["mel@example.com"]]


def test_an_alert_nobody_wants_sends_nothing(project, team, api_key):
    for person in ("ada", "grace"):
        choose(team[person], project, alerts=False, expiry=True)
    alert_raised(project, api_key[0])
    assert mail.outbox == []


def test_a_member_made_owner_gets_the_owners_emails_unless_they_chose_otherwise(
    project, team, api_key
):
    Membership.objects.filter(user=team["mel"]).update(role=Membership.Role.OWNER)
    alert_raised(project, api_key[0])
    assert ["mel@example.com"] in recipients()


def test_one_recipient_refused_does_not_stop_the_others_alert_emails(
    project, team, api_key, monkeypatch
):
    real = detection.emails.send_mail

    def refuses_grace(**kwargs):
        if kwargs["recipient_list"] == ["grace@example.com"]:
            raise ConnectionRefusedError("mailbox unavailable")
        return real(**kwargs)

    monkeypatch.setattr(detection.emails, "send_mail", refuses_grace)
    api_key[0].revoke(by=None)
    usage_write([revoked_key_tried(api_key[0])])
    result = detect(now=NOW)
    assert recipients() == [["ada@example.com"]]
    assert (result.emails, result.failures) == (1, 0)
    # Sent to someone, so not sent again: Ada would get it twice.
    monkeypatch.setattr(detection.emails, "send_mail", real)
    assert detect(now=NOW + timedelta(minutes=1)).emails == 0


class RefusesGrace(locmem.EmailBackend):
    """A mail server that refuses one address, naming it, as SMTP's refusal does."""

    def send_messages(self, messages):  # type: ignore[no-untyped-def]
        for message in messages:
            if "grace@example.com" in message.recipients():
                raise smtplib.SMTPRecipientsRefused({"grace@example.com": (550, b"no mailbox")})
        return super().send_messages(messages)


def test_a_refused_address_is_not_written_to_the_log(
    project, team, api_key, user, settings, caplog
):
    """Found in review: each refused recipient was logged with its traceback, whose error
    names the address (SMTPRecipientsRefused, UnicodeEncodeError), and one that reached
    nobody was logged again by its job from the error it was raised from; the other
    senders log an error's kind only, never an address."""
    settings.EMAIL_BACKEND = f"{__name__}.RefusesGrace"
    choose(user, project, alerts=False, expiry=True)  # the alert's only recipient: Grace
    alert_raised(project, api_key[0])  # reaches nobody: its job logs that, to try again
    expiring_key(project, user)
    assert send_expiry_reminders().sent == 1  # Ada's goes; Grace's refusal is logged
    assert recipients() == [["ada@example.com"]]
    assert "not sent" in caplog.text
    assert "grace@example.com" not in caplog.text


# -- Expiry reminders -----------------------------------------------------------------------


def test_expiry_reminders_follow_each_persons_choice(project, team, user):
    choose(team["ada"], project, alerts=True, expiry=False)
    choose(team["mel"], project, alerts=False, expiry=True)
    expiring_key(project, user)
    assert send_expiry_reminders().sent == 1
    assert recipients() == [["grace@example.com"], ["mel@example.com"]]


def test_a_reminder_nobody_wants_is_kept_for_whoever_turns_it_on(project, user):
    key = expiring_key(project, user)
    choose(user, project, alerts=True, expiry=False)
    assert send_expiry_reminders().sent == 0 and mail.outbox == []
    assert ApiKey.objects.get(pk=key.pk).expiry_week_reminder_sent_at is None
    choose(user, project, alerts=True, expiry=True)
    assert send_expiry_reminders().sent == 1


def test_one_recipient_refused_does_not_stop_the_others_reminders(project, team, user, monkeypatch):
    real = reminders.send_mail

    def refuses_ada(**kwargs):
        if kwargs["recipient_list"] == ["ada@example.com"]:
            raise OSError("mailbox unavailable")
        return real(**kwargs)

    monkeypatch.setattr(reminders, "send_mail", refuses_ada)
    expiring_key(project, user)
    assert send_expiry_reminders().sent == 1
    assert recipients() == [["grace@example.com"]]


def test_a_reminder_that_reached_nobody_is_tried_again(project, user, monkeypatch):
    def refuses(**kwargs):
        raise OSError("the mail server is down")

    monkeypatch.setattr(reminders, "send_mail", refuses)
    key = expiring_key(project, user)
    assert send_expiry_reminders().sent == 0
    assert ApiKey.objects.get(pk=key.pk).expiry_week_reminder_sent_at is None
    monkeypatch.undo()
    assert send_expiry_reminders().sent == 1


def test_a_reminder_that_reached_nobody_is_said_in_a_line_without_a_traceback(
    project, user, monkeypatch, caplog
):
    """Tried again every hour until the key expires (a mail server refusing an address for
    a week): each recipient's failure is logged where it happens, and the reminder's job
    added the whole traceback of NobodyReached each time, up to 168 a token. A fault of
    ours (not the mail server's doing) keeps its traceback."""
    monkeypatch.setattr(reminders, "send_mail", Mock(side_effect=OSError("down")))
    expiring_key(project, user)
    assert send_expiry_reminders().skipped == 1
    [said] = [r for r in caplog.records if r.name == "apikeys.reminders"]
    assert "reached nobody" in said.getMessage() and said.exc_info is None
    caplog.clear()
    monkeypatch.setattr(reminders, "expiry_email_recipients", Mock(side_effect=KeyError("ours")))
    assert send_expiry_reminders().skipped == 1
    [said] = [r for r in caplog.records if r.name == "apikeys.reminders"]
    assert said.exc_info is not None and said.levelname == "ERROR"
