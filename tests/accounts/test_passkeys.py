"""Passkeys: added from the Security page behind sudo, a sign-in of their own, the second
step after a password, and every refusal (unknown or another person's credential, a
replayed or expired challenge, the wrong origin or RP ID, a counter going backwards,
hostile JSON). A software authenticator signs for real; py_webauthn checks for real."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts import passkeys
from accounts.models import Passkey, UsedPasskeyChallenge
from accounts.two_factor import has_two_factor
from audit.models import AuditEvent
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.conftest import PASSWORD

SECURITY = reverse("accounts:account_security")
REGISTER_OPTIONS = reverse("accounts:passkey_register_options")
REGISTER = reverse("accounts:passkey_register_verify")
LOGIN = reverse("accounts:login")
LOGIN_OPTIONS = reverse("accounts:passkey_login_options")
LOGIN_VERIFY = reverse("accounts:passkey_login_verify")
SECOND_OPTIONS = reverse("accounts:passkey_second_options")
SECOND_VERIFY = reverse("accounts:passkey_second_verify")
# The test settings' cookies are plain http: the name without its __Host- prefix.
CHALLENGE_COOKIE = "passkey_challenge"


class _Later:
    """The time module as accounts.passkeys sees it, `seconds` from now."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def time(self) -> float:
        return time.time() + self.seconds


def send(client, url: str, body: object):
    return client.post(url, json.dumps(body), content_type="application/json")


def send_secure(client, url: str, body: object):
    return client.post(url, json.dumps(body), content_type="application/json", secure=True)


def add_passkey(client, device: SoftAuthenticator, name: str = "Laptop") -> Passkey:
    options = client.post(REGISTER_OPTIONS).json()
    answer = send(client, REGISTER, {"credential": device.create(options), "name": name})
    assert answer.status_code == 200, answer.content
    return Passkey.objects.get(credential_id=device.id)


def sign_in_with(client, device: SoftAuthenticator, **how):
    options = client.post(LOGIN_OPTIONS).json()
    return send(client, LOGIN_VERIFY, {"credential": device.get(options, **how)})


@pytest.fixture
def device() -> SoftAuthenticator:
    return SoftAuthenticator()


@pytest.fixture
def enrolled(signed_in, user, device, client):
    """`user` with one passkey on `device`, signed out again."""
    add_passkey(signed_in, device)
    client.logout()
    return device


def test_a_passkey_added_on_the_security_page_is_listed_and_is_a_second_factor(
    signed_in, user, device
):
    options = signed_in.post(REGISTER_OPTIONS).json()
    assert options["rp"]["id"] == "testserver"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["user"]["id"] != str(user.pk)
    answer = send(signed_in, REGISTER, {"credential": device.create(options), "name": "Laptop"})
    assert answer.json() == {"redirect": SECURITY + "#passkeys"}
    passkey = Passkey.objects.get(user=user)
    assert passkey.name == "Laptop" and passkey.transports == ["internal"]
    assert has_two_factor(user)
    assert AuditEvent.objects.filter(action="user.passkey_added", actor=user).exists()
    page = signed_in.get(SECURITY).content.decode()
    assert "Laptop" in page and "passkeys.js" in page

    # The next registration excludes it, and reuses the person's user handle.
    again = signed_in.post(REGISTER_OPTIONS).json()
    assert [c["id"] for c in again["excludeCredentials"]] == [device.id]
    assert again["user"]["id"] == options["user"]["id"]


def test_the_same_passkey_cannot_be_registered_twice(signed_in, device):
    add_passkey(signed_in, device)
    options = signed_in.post(REGISTER_OPTIONS).json()
    answer = send(signed_in, REGISTER, {"credential": device.create(options), "name": ""})
    assert answer.status_code == 400 and "already registered" in answer.json()["error"]


def test_adding_a_passkey_needs_a_fresh_check_of_who_you_are(signed_in, device, settings):
    settings.SUDO_MODE_SECONDS = 0
    refused = signed_in.post(REGISTER_OPTIONS)
    assert refused.status_code == 403 and refused.json()["sudo"] is True
    prompt = signed_in.post(reverse("accounts:passkey_add"))
    assert "Confirm it is you" in prompt.content.decode()
    assert not Passkey.objects.exists()


def test_a_name_must_be_one_line(signed_in, device):
    options = signed_in.post(REGISTER_OPTIONS).json()
    answer = send(signed_in, REGISTER, {"credential": device.create(options), "name": "a\nb"})
    assert answer.status_code == 400 and "one line" in answer.json()["error"]
    assert not Passkey.objects.exists()


def test_a_token_pasted_as_a_passkeys_name_is_refused_and_not_repeated(signed_in, device):
    """A passkey's name goes into the audit trail and the security notice mailed about it."""
    token = "reminix_sk_" + "Zq7" * 12
    options = signed_in.post(REGISTER_OPTIONS).json()
    answer = send(signed_in, REGISTER, {"credential": device.create(options), "name": token})
    assert answer.status_code == 400 and "looks like a Reminix token" in answer.json()["error"]
    assert "Zq7Zq7" not in answer.content.decode()
    assert not Passkey.objects.exists()


def test_registration_from_another_origin_or_rp_is_refused(signed_in, device):
    options = signed_in.post(REGISTER_OPTIONS).json()
    answer = send(
        signed_in, REGISTER, {"credential": device.create(options, origin="https://evil.example")}
    )
    assert answer.status_code == 400
    options = signed_in.post(REGISTER_OPTIONS).json()
    answer = send(signed_in, REGISTER, {"credential": device.create(options, rp_id="evil.example")})
    assert answer.status_code == 400
    assert not Passkey.objects.exists()


def test_a_passkey_alone_signs_in(client, user, enrolled):
    answer = sign_in_with(client, enrolled)
    assert answer.status_code == 200 and answer.json() == {"redirect": reverse("home")}
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditEvent.objects.filter(action="user.passkey_signed_in", actor=user).exists()
    passkey = Passkey.objects.get()
    assert passkey.sign_count == 1 and passkey.last_used_at is not None


def test_passwordless_sign_in_asks_for_user_verification_and_refuses_without_it(client, enrolled):
    options = client.post(LOGIN_OPTIONS).json()
    assert options["userVerification"] == "required" and options["allowCredentials"] == []
    answer = send(client, LOGIN_VERIFY, {"credential": enrolled.get(options, verified=False)})
    assert answer.status_code == 400 and "_auth_user_id" not in client.session


def test_a_passkey_goes_on_only_to_a_local_next_address(client, enrolled):
    options = client.post(LOGIN_OPTIONS).json()
    body = {"credential": enrolled.get(options), "next": "https://evil.example/"}
    assert send(client, LOGIN_VERIFY, body).json() == {"redirect": reverse("home")}


TOKEN = "reminix_sk_" + "T" * 36


@pytest.mark.parametrize(
    ("next_url", "redirect"),
    [
        (f"{SECURITY}?key={TOKEN}&tab=keys", f"{SECURITY}?tab=keys"),
        (f"/projects/{TOKEN}/keys/", "home"),
        (f"/projects/reminix%5Fsk%5F{'T' * 36}/keys/", "home"),
    ],
)
def test_a_passkey_goes_on_to_its_next_address_without_a_token_as_the_sign_in_page_does(
    client, enrolled, next_url, redirect
):
    options = client.post(LOGIN_OPTIONS).json()
    body = {"credential": enrolled.get(options), "next": next_url}
    answer = send(client, LOGIN_VERIFY, body)
    expected = reverse("home") if redirect == "home" else redirect
    assert answer.json() == {"redirect": expected}
    assert "reminix_sk_T" not in answer.content.decode()


def test_an_unknown_passkey_is_refused(client, user, enrolled):
    stranger = SoftAuthenticator()
    answer = sign_in_with(client, stranger)
    assert answer.status_code == 400 and "not registered" in answer.json()["error"]
    assert "_auth_user_id" not in client.session


def test_a_challenge_is_good_once(client, enrolled):
    options = client.post(LOGIN_OPTIONS).json()
    credential = enrolled.get(options)
    assert send(client, LOGIN_VERIFY, {"credential": credential}).status_code == 200
    client.logout()
    replayed = send(client, LOGIN_VERIFY, {"credential": credential})
    assert replayed.status_code == 400 and "already used" in replayed.json()["error"]


def test_a_challenge_copied_from_the_browser_is_not_good_twice(client, user, enrolled):
    """The browser forgets the challenge with its answer; a copy of it kept elsewhere,
    sent again with the answer it was signed for, still fails."""
    options = client.post(LOGIN_OPTIONS).json()
    copied = client.cookies[CHALLENGE_COOKIE].value
    credential = enrolled.get(options, sign_count=0)  # no counter to go backwards
    assert send(client, LOGIN_VERIFY, {"credential": credential}).status_code == 200
    assert client.cookies[CHALLENGE_COOKIE].value == ""  # told to forget it
    elsewhere = Client()
    elsewhere.cookies[CHALLENGE_COOKIE] = copied
    replayed = send(elsewhere, LOGIN_VERIFY, {"credential": credential})
    assert replayed.status_code == 400 and "already used" in replayed.json()["error"]
    assert "_auth_user_id" not in elsewhere.session
    event = AuditEvent.objects.get(action="user.passkey_failed")
    assert event.metadata["reason"] == "challenge_reused"


@pytest.mark.django_db(transaction=True)
def test_one_answer_sent_twice_at_once_signs_in_once(user, monkeypatch):
    """Two workers, each with a copy of the cookie and the answer, both past the signature
    check before either goes on: the used challenge's row lets one through. A passkey
    that keeps no counter (most synced passkeys) gives the counter check nothing to see."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    device = SoftAuthenticator()
    owner = Client()
    owner.force_login(user)
    add_passkey(owner, device)
    browser = Client()
    options = browser.post(LOGIN_OPTIONS).json()
    credential = device.get(options, sign_count=0)
    copied = browser.cookies[CHALLENGE_COOKIE].value
    both_verified = threading.Barrier(2, timeout=10)
    real_verify = passkeys.verify_authentication_response

    def verify_then_wait(**kwargs):
        verified = real_verify(**kwargs)
        both_verified.wait()
        return verified

    monkeypatch.setattr(passkeys, "verify_authentication_response", verify_then_wait)
    answers: list[int] = []

    def answer() -> None:
        try:
            elsewhere = Client()
            elsewhere.cookies[CHALLENGE_COOKIE] = copied
            answers.append(send(elsewhere, LOGIN_VERIFY, {"credential": credential}).status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=answer) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [200, 400]
    assert AuditEvent.objects.filter(action="user.passkey_signed_in").count() == 1


def test_a_challenge_is_bound_to_the_browser_it_was_given_to(client, enrolled):
    options = client.post(LOGIN_OPTIONS).json()
    answer = send(Client(), LOGIN_VERIFY, {"credential": enrolled.get(options)})
    assert answer.status_code == 400 and "expired" in answer.json()["error"]


def test_a_challenge_expires_after_five_minutes(client, enrolled, monkeypatch):
    options = client.post(LOGIN_OPTIONS).json()
    monkeypatch.setattr(passkeys, "time", _Later(301))
    answer = send(client, LOGIN_VERIFY, {"credential": enrolled.get(options)})
    assert answer.status_code == 400 and "expired" in answer.json()["error"]


def test_a_challenge_whose_signature_was_changed_is_refused(client, enrolled):
    options = client.post(LOGIN_OPTIONS).json()
    signed = client.cookies[CHALLENGE_COOKIE].value
    client.cookies[CHALLENGE_COOKIE] = signed[:-2] + ("AA" if signed[-2:] != "AA" else "BB")
    answer = send(client, LOGIN_VERIFY, {"credential": enrolled.get(options)})
    assert answer.status_code == 400 and "expired" in answer.json()["error"]


def test_asking_for_sign_in_options_signed_out_writes_no_session(db):
    """Anyone may ask, as often as they like: the challenge rides in a signed cookie
    of this browser, and nothing is stored until a passkey's answer checks out."""
    sessions, used = Session.objects.count(), UsedPasskeyChallenge.objects.count()
    for _ in range(50):
        answer = Client().post(LOGIN_OPTIONS)
        assert answer.status_code == 200 and answer.json()["challenge"]
        assert answer.cookies[CHALLENGE_COOKIE]["max-age"] == 300
        assert answer.cookies[CHALLENGE_COOKIE]["httponly"]
        assert settings.SESSION_COOKIE_NAME not in answer.cookies
    stranger = SoftAuthenticator()
    for _ in range(10):
        assert sign_in_with(Client(), stranger).status_code == 400
    assert Session.objects.count() == sessions
    assert UsedPasskeyChallenge.objects.count() == used


def test_with_secure_cookies_the_challenge_cookie_is_one_only_this_origin_sets(
    client, enrolled, settings
):
    """As the session cookie (settings/base.py): a sibling subdomain cannot plant one."""
    settings.SESSION_COOKIE_SECURE = True
    options = client.post(LOGIN_OPTIONS, secure=True)
    cookie = options.cookies["__Host-passkey_challenge"]
    assert cookie["secure"] and cookie["path"] == "/" and not cookie["domain"]
    assert cookie["samesite"] == "Strict"
    credential = enrolled.get(options.json(), origin="https://testserver")
    answer = send_secure(client, LOGIN_VERIFY, {"credential": credential})
    assert answer.status_code == 200
    assert answer.cookies["__Host-passkey_challenge"]["max-age"] == 0


def test_a_passkey_sign_in_gets_a_session_of_the_usual_length(client, enrolled):
    before = timezone.now()
    assert sign_in_with(client, enrolled).status_code == 200
    session = Session.objects.get(session_key=client.session.session_key)
    lasts = session.expire_date - before
    assert timedelta(seconds=settings.SESSION_COOKIE_AGE - 60) < lasts
    assert lasts <= timedelta(seconds=settings.SESSION_COOKIE_AGE + 60)
    assert client.session.get_expire_at_browser_close() is False
    assert "_session_expiry" not in client.session


def test_a_challenge_for_one_purpose_is_not_accepted_for_another(signed_in, device, client):
    add_passkey(signed_in, device)
    options = signed_in.post(REGISTER_OPTIONS).json()  # a registration challenge
    client.logout()
    answer = send(
        client, LOGIN_VERIFY, {"credential": device.get({**options, "rpId": "testserver"})}
    )
    assert answer.status_code == 400


def test_an_assertion_for_another_origin_or_rp_is_refused_and_audited(client, user, enrolled):
    assert sign_in_with(client, enrolled, origin="https://evil.example").status_code == 400
    assert sign_in_with(client, enrolled, rp_id="evil.example").status_code == 400
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="user.passkey_failed", actor=user).count() == 2


def test_answers_for_a_known_passkey_write_a_bounded_number_of_audit_rows(client, user, enrolled):
    """Whoever has seen a passkey's credential id (it is no secret: a browser sends it
    with every answer) could send made-up answers for it, each a 'Passkey refused' row on
    its owner's audit page, without end. Each is still refused; only the first
    PASSKEY_FAILED_ROWS_PER_HOUR of an account's hour are written."""
    limit = passkeys.PASSKEY_FAILED_ROWS_PER_HOUR
    for _ in range(limit + 5):
        options = client.post(LOGIN_OPTIONS).json()
        credential = enrolled.get(options)
        credential["response"]["signature"] = "AAAA"  # the id alone, no private key
        answer = send(client, LOGIN_VERIFY, {"credential": credential})
        assert answer.status_code == 400
        assert "could not be verified" in answer.json()["error"]
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="user.passkey_failed", actor=user).count() == limit
    assert sign_in_with(client, enrolled, sign_count=10).status_code == 200  # not locked out
    client.logout()
    # A copy of the key still shows, whatever junk came first.
    assert sign_in_with(client, enrolled, sign_count=7).status_code == 400
    assert AuditEvent.objects.filter(metadata__reason="sign_count_went_back").count() == 1


def test_a_counter_that_goes_backwards_is_refused_and_audited(client, user, enrolled):
    assert sign_in_with(client, enrolled, sign_count=10).status_code == 200
    client.logout()
    answer = sign_in_with(client, enrolled, sign_count=7)
    assert answer.status_code == 400 and "counter went backwards" in answer.json()["error"]
    assert "_auth_user_id" not in client.session
    assert Passkey.objects.get().sign_count == 10
    event = AuditEvent.objects.get(action="user.passkey_failed")
    assert event.metadata["reason"] == "sign_count_went_back"


def test_a_deactivated_account_cannot_sign_in_with_its_passkey(client, user, enrolled):
    user.is_active = False
    user.save()
    assert sign_in_with(client, enrolled).status_code == 400
    assert "_auth_user_id" not in client.session


def test_rp_id_and_origins_come_from_settings_behind_a_proxy(client, enrolled, settings):
    settings.WEBAUTHN_RP_ID = "dashboard.example.com"
    settings.WEBAUTHN_ORIGINS = ["https://dashboard.example.com"]
    options = client.post(LOGIN_OPTIONS).json()
    assert options["rpId"] == "dashboard.example.com"
    # The origin the browser saw is the public one, not the host the proxy sends on.
    from_inside = send(client, LOGIN_VERIFY, {"credential": enrolled.get(options)})
    assert from_inside.status_code == 400
    options = client.post(LOGIN_OPTIONS).json()
    answer = send(
        client,
        LOGIN_VERIFY,
        {"credential": enrolled.get(options, origin="https://dashboard.example.com")},
    )
    assert answer.status_code == 200


# The second step after a password ------------------------------------------------------


def test_after_the_password_a_passkey_is_the_second_step(client, user, enrolled):
    answer = client.post(LOGIN, {"username": user.email, "password": PASSWORD})
    assert answer.url == reverse("accounts:login_code")
    page = client.get(answer.url).content.decode()
    assert "Use a passkey" in page and 'name="code"' not in page  # no app: no code to type
    options = client.post(SECOND_OPTIONS).json()
    assert [c["id"] for c in options["allowCredentials"]] == [enrolled.id]
    answer = send(client, SECOND_VERIFY, {"credential": enrolled.get(options)})
    assert answer.status_code == 200 and answer.json() == {"redirect": reverse("home")}
    assert client.session["_auth_user_id"] == str(user.pk)
    event = AuditEvent.objects.get(action="user.two_factor_passed")
    assert event.metadata == {"with": "passkey"}


def test_the_second_step_refuses_another_persons_passkey(client, user, make_user, enrolled):
    other = make_user(email="other@example.com")
    client.force_login(other)
    theirs = SoftAuthenticator()
    add_passkey(client, theirs)
    client.logout()
    client.post(LOGIN, {"username": user.email, "password": PASSWORD})
    options = client.post(SECOND_OPTIONS).json()
    answer = send(client, SECOND_VERIFY, {"credential": theirs.get({**options})})
    assert answer.status_code == 400
    assert "_auth_user_id" not in client.session


def test_the_second_step_without_a_password_first_sends_you_to_sign_in(client, enrolled):
    answer = client.post(SECOND_OPTIONS)
    assert answer.status_code == 409 and answer.json()["redirect"] == LOGIN


# Managing --------------------------------------------------------------------------------


def test_rename_and_remove_a_passkey(signed_in, user, device):
    passkey = add_passkey(signed_in, device)
    signed_in.post(reverse("accounts:passkey_rename", args=[passkey.pk]), {"name": "Phone"})
    assert Passkey.objects.get().name == "Phone"
    renamed = AuditEvent.objects.get(action="user.passkey_renamed")
    assert renamed.actor == user and renamed.metadata["to"] == "Phone"
    bad = signed_in.post(reverse("accounts:passkey_rename", args=[passkey.pk]), {"name": "x\ty"})
    assert bad.status_code == 422 and "one line" in bad.content.decode()
    token = "reminix_sk_" + "Zq7" * 12
    bad = signed_in.post(reverse("accounts:passkey_rename", args=[passkey.pk]), {"name": token})
    html = bad.content.decode()
    assert bad.status_code == 422 and "looks like a Reminix token" in html
    assert f'id="passkey-name-{passkey.pk}-error"' in html
    assert "Zq7Zq7" not in html and Passkey.objects.get().name == "Phone"
    signed_in.post(reverse("accounts:passkey_remove", args=[passkey.pk]))
    assert not Passkey.objects.exists() and not has_two_factor(user)
    assert AuditEvent.objects.filter(action="user.passkey_removed").exists()


def test_removing_a_passkey_asks_who_you_are_when_the_last_check_is_old(
    signed_in, device, settings
):
    passkey = add_passkey(signed_in, device)
    settings.SUDO_MODE_SECONDS = 0
    answer = signed_in.post(reverse("accounts:passkey_remove", args=[passkey.pk]))
    assert "Confirm it is you" in answer.content.decode()
    assert Passkey.objects.exists()


def test_another_persons_passkey_cannot_be_renamed_or_removed(signed_in, make_user, client):
    other = make_user(email="other@example.com")
    theirs = Passkey.objects.create(
        user=other, credential_id="A" * 43, public_key=b"k", user_handle=b"h", name="Theirs"
    )
    rename = signed_in.post(reverse("accounts:passkey_rename", args=[theirs.pk]), {"name": "x"})
    remove = signed_in.post(reverse("accounts:passkey_remove", args=[theirs.pk]))
    assert rename.status_code == 404 and remove.status_code == 404
    assert Passkey.objects.get().name == "Theirs"


# Hostile JSON ----------------------------------------------------------------------------


HOSTILE = {
    "NaN": b'{"credential": {"id": NaN}}',
    "a lone surrogate": b'{"credential": {"id": "\\ud800"}}',
    "5,000-deep nesting": b'{"credential": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "a huge integer": b'{"credential": {"id": ' + b"9" * 5000 + b"}}",
    "a NUL": b'{"credential": {"id": "abc\\u0000def"}}',
    "not JSON": b"\xff\xfe{",
    "a list": b"[]",
    "no credential": b'{"credential": "x"}',
    "a credential of the wrong shape": b'{"credential": {"id": "AAAAAAAAAAAAAAAAAAAA", "type": 1}}',
}


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_at_sign_in_is_a_400_that_says_why(client, enrolled, body):
    client.post(LOGIN_OPTIONS)
    answer = client.post(LOGIN_VERIFY, body, content_type="application/json")
    assert answer.status_code == 400 and answer.json()["error"]
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("body", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_json_when_adding_a_passkey_is_a_400_that_says_why(signed_in, body):
    signed_in.post(REGISTER_OPTIONS)
    answer = signed_in.post(REGISTER, body, content_type="application/json")
    assert answer.status_code == 400 and answer.json()["error"]
    assert not Passkey.objects.exists()


# The sudo prompt -------------------------------------------------------------------------


def test_a_passkey_answers_the_sudo_prompt_and_the_action_goes_on(signed_in, user, device):
    passkey = add_passkey(signed_in, device)
    session = signed_in.session
    session["sudo_at"] = 0
    session.save()
    remove = reverse("accounts:passkey_remove", args=[passkey.pk])
    prompt = signed_in.post(remove).content.decode()
    assert "Or use a passkey" in prompt and 'name="sudo_code"' not in prompt
    options = signed_in.post(reverse("accounts:passkey_sudo_options")).json()
    answer = signed_in.post(
        reverse("accounts:sudo_confirm"),
        {
            "sudo_next": remove,
            "sudo_method": "POST",
            "sudo_passkey": json.dumps(device.get(options)),
        },
    )
    assert answer.status_code == 302 and not Passkey.objects.exists()
    assert AuditEvent.objects.filter(action="user.sudo_passed", actor=user).exists()


def test_the_sudo_prompt_asks_the_passkey_to_verify_the_person_and_refuses_a_touch_alone(
    signed_in, device
):
    """Sudo asks who is at the keyboard of a session already signed in: a touch of a
    security key left plugged into an unlocked laptop is not that person. Every passkey
    was registered verifying its person (PIN or biometric), so each can do it again."""
    passkey = add_passkey(signed_in, device)
    session = signed_in.session
    session["sudo_at"] = 0
    session.save()
    remove = reverse("accounts:passkey_remove", args=[passkey.pk])
    options = signed_in.post(reverse("accounts:passkey_sudo_options")).json()
    assert options["userVerification"] == "required"
    refused = signed_in.post(
        reverse("accounts:sudo_confirm"),
        {
            "sudo_next": remove,
            "sudo_method": "POST",
            "sudo_passkey": json.dumps(device.get(options, verified=False)),
        },
    )
    assert refused.status_code == 422 and Passkey.objects.exists()


@pytest.mark.parametrize("answer", ["{NaN}", '"\\ud800"', "[" * 5000, "{}"])
def test_a_bad_passkey_answer_to_the_sudo_prompt_is_refused(signed_in, device, answer):
    passkey = add_passkey(signed_in, device)
    session = signed_in.session
    session["sudo_at"] = 0
    session.save()
    signed_in.post(reverse("accounts:passkey_sudo_options"))
    remove = reverse("accounts:passkey_remove", args=[passkey.pk])
    refused = signed_in.post(
        reverse("accounts:sudo_confirm"),
        {"sudo_next": remove, "sudo_method": "POST", "sudo_passkey": answer},
    )
    assert refused.status_code == 422 and Passkey.objects.exists()


def test_a_first_passkey_signs_out_the_sessions_that_never_passed_a_second_factor(
    signed_in, user, device
):
    """As for an authenticator app (tests/accounts/test_two_factor_policy.py): a session
    signed in with the password alone would otherwise count as two-factor from then on.
    A second passkey leaves the others be: they passed one already."""
    other = Client()
    other.force_login(user)
    add_passkey(signed_in, device)
    assert other.get(SECURITY).status_code == 302
    assert signed_in.get(SECURITY).status_code == 200
    later = Client()
    assert sign_in_with(later, device).status_code == 200
    add_passkey(signed_in, SoftAuthenticator(), name="Phone")
    assert later.get(SECURITY).status_code == 200
