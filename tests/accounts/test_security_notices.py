"""Security notices: a change to how an account signs in or calls the API is mailed to its
address once committed, with when and from where, naming the change and never a secret."""

from __future__ import annotations

import logging
import re
import time

import pyotp
import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.models import Passkey
from accounts.passkeys import passkey_remove
from accounts.security_notices import NOTICES
from accounts.two_factor import two_factor_remove
from apikeys.models import PersonalAccessToken
from apikeys.services import personal_token_create, personal_token_regenerate, token_networks_set
from audit.actions import action_named
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.accounts.test_passkeys import add_passkey
from tests.accounts.test_two_factor import enrol
from tests.conftest import PASSWORD

PAT = re.compile(r"reminix_pat_[0-9A-Za-z]{36}")


@pytest.fixture
def notices(django_capture_on_commit_callbacks):
    """Run what is done inside `with notices():` and its on-commit mail; the notices sent."""

    class Watch:
        def __call__(self):
            mail.outbox.clear()
            return django_capture_on_commit_callbacks(execute=True)

        @property
        def sent(self) -> list[mail.EmailMessage]:
            return [m for m in mail.outbox if "[Reminix]" in m.subject]

    return Watch()


def only_notice(notices, user) -> mail.EmailMessage:
    assert len(notices.sent) == 1, [m.subject for m in notices.sent]
    message = notices.sent[0]
    assert message.to == [user.email]
    assert "127.0.0.1" in message.body and " UTC\n" in message.body
    assert "http://testserver" not in message.body  # links from DASHBOARD_URL, never Host
    return message


def test_every_notice_is_of_a_registered_audit_action():
    for action in NOTICES:
        action_named(action)  # raises for a name the audit log does not know


def test_a_password_change_is_mailed_with_where_it_came_from(signed_in, user, notices, settings):
    settings.DASHBOARD_URL = "https://dash.example"
    with notices():
        answer = signed_in.post(
            reverse("accounts:password_change"),
            {
                "old_password": PASSWORD,
                "new_password1": "a much longer new passphrase",
                "new_password2": "a much longer new passphrase",
            },
        )
    assert answer.status_code == 302
    message = only_notice(notices, user)
    assert message.subject == "[Reminix] Your password was changed"
    assert "https://dash.example/account/password/reset/" in message.body
    assert "a much longer new passphrase" not in message.body


def test_a_password_reset_by_link_is_mailed_too(client, user, notices):
    link = reverse(
        "accounts:password_reset_confirm",
        args=[
            urlsafe_base64_encode(force_bytes(user.pk)),
            default_token_generator.make_token(user),
        ],
    )
    form = client.get(link, follow=True)
    with notices():
        answer = client.post(
            form.redirect_chain[-1][0],
            {
                "new_password1": "another long passphrase",
                "new_password2": "another long passphrase",
            },
        )
    assert answer.status_code == 302
    assert "with a reset link" in only_notice(notices, user).body


def test_an_authenticator_added_and_new_recovery_codes_are_mailed(signed_in, user, notices):
    with notices():
        _, codes = enrol(signed_in)
    message = only_notice(notices, user)
    assert message.subject == "[Reminix] An authenticator app was added to your account"
    assert not any(code in message.body for code in codes)

    with notices():
        signed_in.post(reverse("accounts:recovery_codes_new"))
    assert "old ones no longer work" in only_notice(notices, user).body


def test_a_recovery_code_used_to_sign_in_is_mailed_with_how_many_are_left(
    signed_in, client, user, notices
):
    _, codes = enrol(signed_in)
    signed_in.logout()
    client.post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    with notices():
        answer = client.post(reverse("accounts:login_code"), {"code": codes[0]})
    assert answer.status_code == 302
    message = [m for m in notices.sent if "recovery code" in m.subject]
    assert len(message) == 1 and "(9 left;" in message[0].body
    assert codes[0] not in message[0].body


def test_turning_the_authenticator_off_is_mailed(signed_in, user, notices):
    enrol(signed_in)
    with notices():
        assert two_factor_remove(user, ip="192.0.2.7")
    message = notices.sent[0]
    assert message.subject == "[Reminix] Two-factor authentication was turned off"
    assert "192.0.2.7" in message.body


def test_a_passkey_added_or_removed_is_mailed_by_name(signed_in, user, notices):
    with notices():
        passkey = add_passkey(signed_in, SoftAuthenticator(), name="Phone")
    message = only_notice(notices, user)
    assert message.subject == "[Reminix] A passkey was added to your account"
    assert "“Phone" in message.body
    with notices():
        passkey_remove(passkey=Passkey.objects.get(pk=passkey.pk), ip="127.0.0.1")
    assert "was removed" in only_notice(notices, user).body


def test_a_personal_access_token_created_is_mailed_by_name_and_hint_never_its_secret(
    signed_in, user, notices
):
    with notices():
        answer = signed_in.post(
            reverse("apikeys:personal_token_create"),
            {
                "name": "CI deploy",
                "access": "full",
                "expiry": "30",
                "form_id": "f1",
                "reach": "all",
            },
        )
    assert answer.status_code == 201
    token = PAT.search(answer.content.decode()).group(0)
    message = only_notice(notices, user)
    pat = PersonalAccessToken.objects.get(user=user)
    assert f"“CI deploy” ({pat.hint})" in message.body
    assert token not in message.body and token[12:] not in message.body

    with notices():
        secret = personal_token_regenerate(personal_token=pat, by=user, expires_at=None)
    regenerated = notices.sent[0]
    assert regenerated.subject == "[Reminix] A personal access token was regenerated"
    assert str(secret) not in regenerated.body


def test_a_personal_access_tokens_networks_changed_are_mailed_with_where_it_now_works(
    user, notices
):
    pat, _ = personal_token_create(user=user, name="CI deploy")
    with notices():
        token_networks_set(pat, networks=["203.0.113.0/24"], by=user, ip="127.0.0.1")
    message = only_notice(notices, user)
    assert message.subject == "[Reminix] Where a personal access token may be used was changed"
    assert f"“CI deploy” ({pat.hint}) may now be used from 203.0.113.0/24." in message.body
    with notices():
        token_networks_set(pat, networks=[], by=user, ip="127.0.0.1")
    assert "may now be used from any network." in only_notice(notices, user).body


def test_a_network_added_at_the_end_of_a_long_allowlist_is_named_in_the_notice(user, notices):
    """The notice's detail was cut to 200 characters, as a mail header is: behind a long
    name and a few networks, the one someone added with a stolen session, put last, never
    reached the owner's mail."""
    pat, _ = personal_token_create(user=user, name="Deploy from the build farm " + "x" * 70)
    networks = [f"2001:db8:{n:x}::/48" for n in range(1, 20)]
    token_networks_set(pat, networks=networks, by=user, ip="127.0.0.1")
    with notices():
        token_networks_set(pat, networks=[*networks, "198.51.100.7/32"], by=user, ip="192.0.2.9")
    body = only_notice(notices, user).body
    assert "2001:db8:13::/48, 198.51.100.7/32.\n" in body


def test_a_change_that_is_rolled_back_is_not_mailed(user, notices):
    with notices(), pytest.raises(RuntimeError), transaction.atomic():
        personal_token_create(user=user, name="Undone")
        raise RuntimeError
    assert notices.sent == []


def test_a_mail_server_that_is_down_does_not_undo_the_change(user, notices, monkeypatch, caplog):
    def refuse(**_):
        raise ConnectionRefusedError("mail server down")

    monkeypatch.setattr("accounts.security_notices.send_mail", refuse)
    with caplog.at_level(logging.WARNING), notices():
        personal_token_create(user=user, name="Still made")
    assert PersonalAccessToken.objects.filter(user=user, name="Still made").exists()
    assert "Security notice to user" in caplog.text and "ConnectionRefusedError" in caplog.text


def test_a_totp_code_used_normally_sends_nothing(signed_in, client, user, notices):
    secret, _ = enrol(signed_in)
    signed_in.logout()
    client.post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    with notices():
        code = pyotp.TOTP(secret).at(time.time() + 30)
        assert client.post(reverse("accounts:login_code"), {"code": code}).status_code == 302
    assert not [m for m in notices.sent if "recovery" in m.subject]
