"""Every email the product sends, made through its own flow (a page, the API, a job) with
names of the odd kinds people type (markup, addresses and links, an encoded word, emoji,
a superscript), and read as its recipient's mail program reads it: one message to one
address, our sender, a subject of one line that starts [Reminix], plain text only (no
part a mail program renders as HTML), no secret but a one-time link's, and every link on
DASHBOARD_URL, whatever Host the request that caused it named."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.test import Client
from django.urls import resolve, reverse
from django.utils import timezone

from accounts.invitations import invitation_send
from accounts.models import Project, User
from accounts.services import account_delete, project_delete
from alerts.detection import detect
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.reminders import send_expiry_reminders
from apikeys.services import personal_token_create
from core.mail import one_line
from tests.conftest import PASSWORD, usage_call
from usage.writer import usage_write

DASHBOARD = "https://dash.example.test"
HOST = "localhost"  # an allowed Host, not the dashboard's: no link may be built from it
# Every kind a name field takes that could read as something else in a mail.
NAME = "<b>x</b> https://x evil.com/login =?utf-8?b?4oCu?= 😀 ²"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SECRET = re.compile(r"reminix_(?:sk|pat|ct)_[0-9A-Za-z]{30}")
# The emails whose purpose is a one-time link, and the page it opens.
ONE_TIME_LINKS = {
    "sign-up": "email_verify",
    "address change": "email_verify",
    "password reset": "password_reset_confirm",
    "invitation": "invitation_accept",
}


def browser() -> Client:
    return Client(HTTP_HOST=HOST)


def signed_in(user: User) -> Client:
    client = browser()
    client.force_login(user)
    return client


def named(user: User) -> Project:
    """`user`'s first project, it and its owner given NAME."""
    User.objects.filter(pk=user.pk).update(name=NAME)
    project = Project.objects.for_user(user).get()
    Project.objects.filter(pk=project.pk).update(name=NAME)
    project.refresh_from_db()
    return project


def sign_up(user, capture, make_key):
    browser().post(
        reverse("accounts:signup"),
        {"email": "new@bücher.example", "name": NAME, "password1": PASSWORD, "password2": PASSWORD},
    )
    return "new@xn--bcher-kva.example"


def sign_up_taken(user, capture, make_key):
    browser().post(
        reverse("accounts:signup"),
        {"email": user.email, "name": NAME, "password1": PASSWORD, "password2": PASSWORD},
    )
    return user.email


def password_reset(user, capture, make_key):
    browser().post(reverse("accounts:password_reset"), {"email": user.email})
    return user.email


def password_reset_no_account(user, capture, make_key):
    browser().post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})
    return "nobody@example.com"


def address_change(user, capture, make_key):
    signed_in(user).post(reverse("accounts:account_email"), {"email": "ada2@example.com"})
    return "ada2@example.com"


def address_changed(user, capture, make_key):
    client = signed_in(user)
    client.post(reverse("accounts:account_email"), {"email": "ada2@example.com"})
    link = re.search(rf"{DASHBOARD}(\S+)", mail.outbox.pop().body).group(1)
    client.post(link)
    return "ada@example.com"


def invitation(user, capture, make_key):
    project = named(user)
    with capture(execute=True):
        invitation_send(project=project, email="bob@bücher.example", role="member", by=user)
    return "bob@xn--bcher-kva.example"


def security_notice(user, capture, make_key):
    with capture(execute=True):
        personal_token_create(user=user, name=NAME)
    return user.email


def new_sign_in(user, capture, make_key):
    for ip in ("192.0.2.1", "198.51.100.1"):
        with capture(execute=True):
            Client(REMOTE_ADDR=ip, HTTP_HOST=HOST).post(
                reverse("accounts:login"), {"username": user.email, "password": PASSWORD}
            )
    return user.email


def project_deleted(user, capture, make_key):
    project = named(user)
    with capture(execute=True):
        project_delete(project=project, by=user)
    return user.email


def account_deleted(user, capture, make_key):
    with capture(execute=True):
        account_delete(user=user, ip="192.0.2.1")
    return "ada@example.com"


def leak_report(user, capture, make_key):
    _, secret = make_key(named(user), name=NAME)
    mail.outbox.clear()
    with capture(execute=True):
        browser().post(
            "/v1/credentials/revoke", {"credentials": [secret]}, content_type="application/json"
        )
    return user.email


def token_reminder(user, capture, make_key):
    pat, _ = personal_token_create(user=user, name=NAME)
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        expires_at=timezone.now() + timedelta(days=3)
    )
    mail.outbox.clear()
    send_expiry_reminders()
    return user.email


def key_reminder(user, capture, make_key):
    key, _ = make_key(named(user), name=NAME)
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() + timedelta(days=3))
    send_expiry_reminders()
    return user.email


def alert(user, capture, make_key):
    key, _ = make_key(named(user), name=NAME)
    key.revoke(by=None)
    usage_write(
        [usage_call(NOW - timedelta(minutes=3), key=key, status=401, error_code="expired_api_key")]
    )
    detect(now=NOW)
    return user.email


def new_network(user, capture, make_key):
    pat, _ = personal_token_create(user=user, name=NAME)
    project = Project.objects.for_user(user).get()
    mail.outbox.clear()
    usage_write(
        [usage_call(NOW - timedelta(days=2, minutes=m), pat=pat, ip="203.0.113.9", project=project)
         for m in range(3)]
    )  # fmt: skip
    detect(now=NOW)
    usage_write([usage_call(NOW + timedelta(minutes=1), pat=pat, ip="198.51.100.7")])
    detect(now=NOW + timedelta(minutes=5))
    return user.email


MAILS: dict[str, Callable[..., str]] = {
    "sign-up": sign_up,
    "sign-up to a taken address": sign_up_taken,
    "password reset": password_reset,
    "password reset for no account": password_reset_no_account,
    "address change": address_change,
    "address changed": address_changed,
    "invitation": invitation,
    "security notice": security_notice,
    "new sign-in": new_sign_in,
    "project deleted": project_deleted,
    "account deleted": account_deleted,
    "leak report": leak_report,
    "token expiry reminder": token_reminder,
    "key expiry reminder": key_reminder,
    "alert": alert,
    "token used from a new network": new_network,
}


@pytest.mark.parametrize("kind", MAILS)
def test_each_email_reads_as_sent_by_us_in_one_line_of_subject_and_plain_text(
    kind, user, make_key, settings, django_capture_on_commit_callbacks
):
    settings.DASHBOARD_URL = DASHBOARD
    mail.outbox.clear()
    to = MAILS[kind](user, django_capture_on_commit_callbacks, make_key)

    (message,) = mail.outbox
    received = email.message_from_bytes(
        message.message(policy=email.policy.SMTP).as_bytes(), policy=email.policy.default
    )
    assert received["To"] == to
    assert received["From"] == settings.DEFAULT_FROM_EMAIL
    assert not {"Cc", "Bcc", "Reply-To"} & set(received.keys())
    subject = str(received["Subject"]).strip()
    assert subject.startswith("[Reminix] ") and subject == message.subject
    assert not re.search(r"[\r\n\x00\u202e]", subject)
    assert received.get_content_type() == "text/plain"
    assert not getattr(message, "alternatives", [])

    # The names are the customer's text, there to read: what is left is ours, and every
    # link in it is on the dashboard's address.
    ours = message.body.replace(one_line(NAME), "")
    links = re.findall(r"https?://\S+", ours)
    # Where to act or look; with the account deleted there is nothing left to sign in to.
    assert links or kind == "account deleted"
    assert all(link.startswith(f"{DASHBOARD}/") or link == DASHBOARD for link in links), links
    # A secret only where the email is for its one-time link; never a token's secret.
    for link in links:
        view = resolve(urlsplit(link).path or "/").url_name
        if view in ONE_TIME_LINKS.values():
            assert kind in ONE_TIME_LINKS, link
    assert not SECRET.search(message.body)
