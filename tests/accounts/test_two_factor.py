"""Two-factor sign-in: enrolling an authenticator app (QR code drawn here, seed kept
encrypted), recovery codes shown once, the sign-in's second step and every refusal."""

from __future__ import annotations

import re
import threading
import time

import pyotp
import pytest
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Passkey, RecoveryCode, TotpDevice
from accounts.two_factor import has_two_factor
from audit.models import AuditEvent
from tests.conftest import PASSWORD

SECURITY = reverse("accounts:account_security")
LOGIN = reverse("accounts:login")
CODE = reverse("accounts:login_code")


def enrol(client) -> tuple[str, list[str]]:
    """Turn two-factor on through the pages; the seed and the recovery codes."""
    client.post(reverse("accounts:totp_setup"))
    page = client.get(SECURITY).content.decode()
    secret = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    answer = client.post(reverse("accounts:totp_confirm"), {"code": pyotp.TOTP(secret).now()})
    assert answer.status_code == 200
    return secret, codes_in(answer.content.decode())


def codes_in(html: str) -> list[str]:
    box = re.search(r'<textarea id="recovery-codes"[^>]*>(.*?)</textarea>', html, re.S)
    return box.group(1).split() if box else []


def next_code(secret: str) -> str:
    """A code of the next time step: the one just used cannot be used again."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_enrolling_shows_a_qr_code_and_the_key_then_ten_codes_once(signed_in, user):
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(SECURITY).content.decode()
    assert "<svg" in page and 'class="setup-key"' in page
    secret = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    device = TotpDevice.objects.get(user=user)
    assert secret not in device.secret_encrypted and device.confirmed_at is None
    assert not has_two_factor(user)

    wrong = signed_in.post(reverse("accounts:totp_confirm"), {"code": "000000"})
    assert wrong.status_code == 422 and "That code is not right" in wrong.content.decode()
    answer = signed_in.post(reverse("accounts:totp_confirm"), {"code": pyotp.TOTP(secret).now()})
    assert "no-store" in answer["Cache-Control"]
    codes = set(codes_in(answer.content.decode()))
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z2-9]{5}-[a-z2-9]{5}", c) for c in codes)
    assert has_two_factor(user)
    assert RecoveryCode.objects.filter(user=user).count() == 10
    stored = set(RecoveryCode.objects.values_list("code_hash", flat=True))
    assert not codes & stored
    assert AuditEvent.objects.filter(action="user.two_factor_enabled", actor=user).exists()
    # Shown once: the page never lists them again.
    later = signed_in.get(SECURITY).content.decode()
    assert not any(code in later for code in codes) and "10 of 10 recovery codes left" in later


def test_a_setup_begun_in_another_browser_is_neither_offered_nor_confirmed_here(signed_in, user):
    """Someone who had the password began a setup and saw its key; the owner, having
    changed the password, goes to turn two-factor on. Offered that same key, they would
    confirm an authenticator the intruder holds a copy of."""
    intruder = Client()
    intruder.force_login(user)
    intruder.post(reverse("accounts:totp_setup"))
    theirs = re.search(
        r'<code class="setup-key">([A-Z2-7]+)</code>', intruder.get(SECURITY).content.decode()
    ).group(1)

    page = signed_in.get(SECURITY).content.decode()
    assert theirs not in page and "Set up an authenticator app" in page
    refused = signed_in.post(
        reverse("accounts:totp_confirm"), {"code": pyotp.TOTP(theirs).now()}, follow=True
    )
    # Said on the page, which has no code field to say it beside.
    assert "That setup is no longer waiting for a code" in refused.content.decode()
    assert theirs not in refused.content.decode() and not has_two_factor(user)

    mine, _ = enrol(signed_in)
    assert mine != theirs and has_two_factor(user)


def test_a_setup_form_sent_after_the_app_went_on_in_another_tab_says_it_is_on(signed_in, user):
    """The setup's code sent from a tab left open after the app was turned on in another
    tab: the page has no code field to say "That code is not right" beside (it said
    nothing, with a 422). It says the app is on, and changes nothing."""
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(SECURITY).content.decode()
    stale = {"code": "123456", "form_id": form_id_in(page)}
    enrol(signed_in)  # the other tab: set up anew and turned on
    saved = stored_codes(user)
    answer = signed_in.post(reverse("accounts:totp_confirm"), stale, follow=True)
    assert answer.redirect_chain[-1][0] == SECURITY
    assert "An authenticator app is already on." in answer.content.decode()
    assert stored_codes(user) == saved and TotpDevice.objects.filter(user=user).count() == 1


def test_odd_codes_are_refused_beside_the_field(signed_in):
    signed_in.post(reverse("accounts:totp_setup"))
    for odd in ("²²²²²²", "12345\x00", "9" * 5000, "", "١٢٣٤٥٦", " "):
        answer = signed_in.post(reverse("accounts:totp_confirm"), {"code": odd})
        assert answer.status_code == 422, odd


def sign_in(client, email: str):
    return client.post(LOGIN, {"username": email, "password": PASSWORD})


def test_signing_in_asks_for_a_code_after_the_password(client, user, signed_in):
    secret, _ = enrol(signed_in)
    signed_in.logout()
    answer = sign_in(client, user.email)
    assert answer.status_code == 302 and answer["Location"] == CODE
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("apikeys:personal_token_list")).status_code == 302
    assert client.post(CODE, {"code": "000000"}).status_code == 422
    assert "_auth_user_id" not in client.session
    signed = client.post(CODE, {"code": next_code(secret)})
    assert signed.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)
    assert AuditEvent.objects.filter(action="user.two_factor_failed", actor=user).count() == 1
    assert AuditEvent.objects.filter(action="user.two_factor_passed", actor=user).exists()


def test_a_code_works_once(client, user, signed_in):
    secret, _ = enrol(signed_in)
    signed_in.logout()
    code = next_code(secret)
    sign_in(client, user.email)
    assert client.post(CODE, {"code": code}).status_code == 302
    client.logout()
    sign_in(client, user.email)
    assert client.post(CODE, {"code": code}).status_code == 422


def test_a_recovery_code_signs_in_once(client, user, signed_in):
    _, codes = enrol(signed_in)
    signed_in.logout()
    sign_in(client, user.email)
    assert client.post(CODE, {"code": codes[0].upper()}).status_code == 302
    assert AuditEvent.objects.get(action="user.recovery_code_used").metadata == {"left": 9}
    client.logout()
    sign_in(client, user.email)
    assert client.post(CODE, {"code": codes[0]}).status_code == 422


def test_five_wrong_codes_send_you_back_to_the_password(client, user, signed_in):
    enrol(signed_in)
    signed_in.logout()
    sign_in(client, user.email)
    for _ in range(4):
        assert client.post(CODE, {"code": "111111"}).status_code == 422
    assert client.post(CODE, {"code": "111111"})["Location"] == LOGIN
    assert client.get(CODE)["Location"] == LOGIN


def test_the_code_step_waits_five_minutes_at_most(client, user, signed_in):
    secret, _ = enrol(signed_in)
    signed_in.logout()
    sign_in(client, user.email)
    session = client.session
    session["two_factor_pending"]["at"] -= 301
    session.save()
    answer = client.post(CODE, {"code": next_code(secret)})
    assert answer["Location"] == LOGIN and "_auth_user_id" not in client.session


def test_someone_else_signing_in_ends_a_code_step_left_open_in_the_browser(
    client, user, signed_in, make_user
):
    """Found in review: Ada passed the password step on a shared computer and walked away;
    Bob signed in there with his password; Ada's pending step stayed in Bob's session, so
    her code alone (seen over her shoulder) would have signed Bob's browser in as her."""
    secret, _ = enrol(signed_in)
    signed_in.logout()
    sign_in(client, user.email)
    bob = make_user(email="bob@example.com")
    assert sign_in(client, bob.email)["Location"] != CODE
    assert client.session["_auth_user_id"] == str(bob.pk)
    assert "two_factor_pending" not in client.session
    client.post(CODE, {"code": next_code(secret)})
    assert client.session["_auth_user_id"] == str(bob.pk)


def test_without_a_password_the_code_page_signs_nobody_in(client, user):
    assert client.get(CODE)["Location"] == LOGIN
    session = client.session
    session["two_factor_pending"] = {"user": "1; drop", "at": time.time(), "backend": "x"}
    session.save()
    assert client.post(CODE, {"code": "123456"})["Location"] == LOGIN


def test_turning_it_off_asks_who_you_are_and_is_audited(signed_in, user):
    enrol(signed_in)
    session = signed_in.session
    session["sudo_at"] = time.time() - 660
    session.save()
    prompt = signed_in.post(reverse("accounts:totp_remove"))
    assert prompt.status_code == 200 and "Confirm it is you" in prompt.content.decode()
    assert has_two_factor(user)
    done = signed_in.post(
        reverse("accounts:sudo_confirm"),
        {
            "sudo_password": PASSWORD,
            "sudo_next": reverse("accounts:totp_remove"),
            "sudo_method": "POST",
        },
    )
    assert done.status_code == 302
    assert not has_two_factor(user) and not RecoveryCode.objects.filter(user=user).exists()
    assert AuditEvent.objects.filter(action="user.two_factor_disabled").exists()


def test_new_recovery_codes_replace_the_old(signed_in, user):
    _, old = enrol(signed_in)
    answer = signed_in.post(reverse("accounts:recovery_codes_new"))
    new = set(codes_in(answer.content.decode()))
    assert len(new) == 10 and not new & set(old)
    assert AuditEvent.objects.filter(action="user.recovery_codes_regenerated").exists()


def stored_codes(user) -> set[str]:
    return set(RecoveryCode.objects.filter(user=user).values_list("code_hash", flat=True))


def form_id_in(html: str) -> str:
    return re.search(r'name="form_id" value="([^"]+)"', html).group(1)


def test_new_recovery_codes_sent_again_keep_the_codes_just_shown(signed_in, user):
    """A reload of the codes' page (the POST resent) would replace the set the person just
    saved, without their noticing; the same form makes its codes once."""
    enrol(signed_in)
    body = {"form_id": form_id_in(signed_in.get(SECURITY).content.decode())}
    first = signed_in.post(reverse("accounts:recovery_codes_new"), body)
    saved = stored_codes(user)
    again = signed_in.post(reverse("accounts:recovery_codes_new"), body, follow=True)
    assert stored_codes(user) == saved
    page = again.content.decode()
    assert "already made and shown once" in page
    assert not set(codes_in(first.content.decode())) & set(page.split())
    assert AuditEvent.objects.filter(action="user.recovery_codes_regenerated").count() == 1
    # A fresh form is a new request: it makes new codes.
    signed_in.post(reverse("accounts:recovery_codes_new"), {"form_id": form_id_in(page)})
    assert not saved & stored_codes(user)


def test_the_setup_confirmed_again_says_its_codes_were_shown_once(signed_in, user):
    """A reload of the page that showed the first codes resends the confirmation: it
    makes no new codes, and says why rather than answering with the Security page alone."""
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(SECURITY).content.decode()
    secret = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    body = {"code": pyotp.TOTP(secret).now(), "form_id": form_id_in(page)}
    assert signed_in.post(reverse("accounts:totp_confirm"), body).status_code == 200
    saved = stored_codes(user)
    again = signed_in.post(reverse("accounts:totp_confirm"), body, follow=True)
    assert again.status_code == 200 and "already made and shown once" in again.content.decode()
    assert stored_codes(user) == saved


def test_an_unconfirmed_address_cannot_set_up_a_second_factor(client, db):
    """Whoever signs up with someone else's address must not be able to lock its owner out
    with a second factor of their own (the pre-hijacked account)."""
    from accounts.services import user_sign_up

    squatter = user_sign_up(email="victim@corp.example", password=PASSWORD)
    client.force_login(squatter)
    assert client.post(reverse("accounts:totp_setup")).status_code == 403
    assert not TotpDevice.objects.filter(user=squatter).exists()


def test_a_reset_of_an_unconfirmed_account_confirms_it_and_drops_its_second_factor(client, db):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from accounts.services import user_sign_up
    from accounts.two_factor import enrolment_confirm, enrolment_start

    squatter = user_sign_up(email="victim@corp.example", password=PASSWORD)
    enrolment = enrolment_start(squatter)  # as if set up before verification existed
    code = pyotp.TOTP(enrolment.secret).now()
    enrolment_confirm(squatter, code, device_id=enrolment.device_id, ip=None)
    assert has_two_factor(squatter)
    uid = urlsafe_base64_encode(force_bytes(squatter.pk))
    url = reverse(
        "accounts:password_reset_confirm",
        args=[uid, default_token_generator.make_token(squatter)],
    )
    form_url = client.get(url)["Location"]
    new = "a brand new passphrase 77"
    assert client.post(form_url, {"new_password1": new, "new_password2": new}).status_code == 302
    squatter.refresh_from_db()
    assert squatter.email_verified and not has_two_factor(squatter)
    assert not RecoveryCode.objects.filter(user=squatter).exists()
    answer = client.post(LOGIN, {"username": "victim@corp.example", "password": new})
    assert answer["Location"] != CODE  # no code asked: the owner is in


def test_a_password_changed_during_the_code_step_ends_it(client, user, signed_in):
    """The old password got someone to the code step; the owner's new password must not
    leave them five minutes to finish with a phished or guessed code."""
    secret, _ = enrol(signed_in)
    signed_in.logout()
    sign_in(client, user.email)
    user.set_password("a new long passphrase 7")
    user.save(update_fields=["password"])
    answer = client.post(CODE, {"code": next_code(secret)})
    assert answer["Location"] == LOGIN and "_auth_user_id" not in client.session


def test_confirming_an_authenticator_asks_who_you_are_when_the_last_check_is_old(signed_in, user):
    """Setting up an app asks for the password; so must its last step, which turns it on: a
    borrowed session would otherwise finish a setup left open on the Security page (its key
    is shown there) with an app of its own, and take the recovery codes."""
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(SECURITY).content.decode()
    secret = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    session = signed_in.session
    session["sudo_at"] = time.time() - 660
    session.save()
    answer = signed_in.post(reverse("accounts:totp_confirm"), {"code": pyotp.TOTP(secret).now()})
    assert 'name="sudo_password"' in answer.content.decode()
    assert not has_two_factor(user) and not RecoveryCode.objects.filter(user=user).exists()


def test_the_password_step_gives_the_browser_a_new_session_key(client, user, signed_in):
    """Session fixation: a key someone planted in the browser before the password (a
    cookie set from a sibling subdomain) must not carry the step that the password
    passed: with it, they would be at the code step as this person, guessing codes
    against the person's count and sending them back to the password."""
    enrol(signed_in)
    signed_in.logout()
    client.get(LOGIN)
    session = client.session
    session["planted"] = True
    session.save()
    planted = session.session_key
    assert sign_in(client, user.email)["Location"] == CODE
    assert client.session.session_key != planted
    fixed = client.__class__()
    fixed.cookies["sessionid"] = planted
    assert fixed.get(CODE)["Location"] == LOGIN


def test_a_person_with_only_a_passkey_can_add_an_authenticator_app(signed_in, user):
    # The page offered "Set up an authenticator app" and the button answered "already on":
    # a passkey counts as two-factor, but it is no app.
    Passkey.objects.create(
        user=user, credential_id="C" * 43, public_key=b"k", user_handle=b"h", name="Laptop"
    )
    secret, codes = enrol(signed_in)
    device = TotpDevice.objects.get(user=user)
    assert device.confirmed_at is not None and len(codes) == 10
    assert pyotp.TOTP(secret).now()  # the seed the page showed is the one kept
    again = signed_in.post(reverse("accounts:totp_setup"), follow=True)
    assert "An authenticator app is already on." in again.content.decode()
    assert TotpDevice.objects.filter(user=user).count() == 1


def test_a_stale_setup_form_confirms_a_new_setup_once_the_first_was_turned_off(signed_in, user):
    """The form that turned the app on, sent again after it was turned off and set up
    anew (a tab left open, Back): its codes no longer work, so it cannot say they do; it
    confirms the new setup, as a fresh form would."""
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(SECURITY).content.decode()
    secret = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    stale = {"code": pyotp.TOTP(secret).now(), "form_id": form_id_in(page)}
    assert signed_in.post(reverse("accounts:totp_confirm"), stale).status_code == 200
    assert signed_in.post(reverse("accounts:totp_remove")).status_code == 302
    assert not has_two_factor(user)
    signed_in.post(reverse("accounts:totp_setup"))
    page = signed_in.get(SECURITY).content.decode()
    secret = re.search(r'<code class="setup-key">([A-Z2-7]+)</code>', page).group(1)
    answer = signed_in.post(
        reverse("accounts:totp_confirm"), {**stale, "code": next_code(secret)}, follow=True
    )
    assert "still work" not in answer.content.decode()
    assert has_two_factor(user) and len(codes_in(answer.content.decode())) == 10


@pytest.mark.django_db(transaction=True)
def test_two_new_sets_made_at_once_leave_one_set_of_ten(user, monkeypatch):
    """The same form sent twice at once (a double click, two tabs): each request made its
    set, and the second's delete, blocked on the first's new rows, skipped them once they
    committed, so both sets worked, twenty codes, ten of them shown to nobody."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    import accounts.two_factor
    from accounts.two_factor import enrolment_start, recovery_codes_regenerate

    enrolment_start(user)
    TotpDevice.objects.filter(user=user).update(confirmed_at=timezone.now())
    recovery_codes_regenerate(user, ip=None)
    made, real_audit = threading.Event(), accounts.two_factor.audit_record

    def made_then_wait(**kwargs):
        real_audit(**kwargs)
        if threading.current_thread().name == "first":
            made.set()
            _until_a_backend_waits_for_a_lock()

    monkeypatch.setattr(accounts.two_factor, "audit_record", made_then_wait)

    def regenerate() -> None:
        try:
            if threading.current_thread().name == "second":
                made.wait(timeout=10)
            recovery_codes_regenerate(user, ip=None)
        finally:
            connection.close()

    threads = [threading.Thread(target=regenerate, name=n) for n in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert RecoveryCode.objects.filter(user=user).count() == 10


def _until_a_backend_waits_for_a_lock(deadline_seconds: float = 10) -> None:
    """Until another connection waits for a lock (the second request, held up by the
    first's transaction), or the deadline: either way the first then commits."""
    ends = time.monotonic() + deadline_seconds
    with connections["default"].cursor() as cursor:
        while time.monotonic() < ends:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # (kept per transaction)
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)


def test_new_recovery_codes_sent_again_after_newer_ones_do_not_say_they_still_work(signed_in, user):
    """Back to the page of a set since replaced (by a fresh form, another tab): resent, it
    makes nothing, and must not tell the person the codes they see there still work."""
    enrol(signed_in)
    older = {"form_id": form_id_in(signed_in.get(SECURITY).content.decode())}
    signed_in.post(reverse("accounts:recovery_codes_new"), older)
    newer = {"form_id": form_id_in(signed_in.get(SECURITY).content.decode())}
    signed_in.post(reverse("accounts:recovery_codes_new"), newer)
    saved = stored_codes(user)
    again = signed_in.post(reverse("accounts:recovery_codes_new"), older, follow=True)
    assert stored_codes(user) == saved
    page = again.content.decode()
    assert "already made and shown once" in page and "still work" not in page


def test_a_stale_new_codes_form_after_the_app_went_makes_no_codes_that_cannot_work(
    signed_in, user, client
):
    """Recovery codes stand in for the app's codes, and are checked only while the app is
    on. The Security page's New recovery codes form, sent from a tab left open after the
    app was turned off (a passkey left as the second factor), showed ten codes to save
    and mailed that new ones were made: none of them would ever sign anyone in."""
    Passkey.objects.create(
        user=user, credential_id="C" * 43, public_key=b"k", user_handle=b"h", name="Laptop"
    )
    enrol(signed_in)
    body = {"form_id": form_id_in(signed_in.get(SECURITY).content.decode())}
    assert signed_in.post(reverse("accounts:totp_remove")).status_code == 302
    assert has_two_factor(user)  # the passkey

    answer = signed_in.post(reverse("accounts:recovery_codes_new"), body, follow=True)
    assert codes_in(answer.content.decode()) == []
    assert not RecoveryCode.objects.filter(user=user).exists()
    assert not AuditEvent.objects.filter(action="user.recovery_codes_regenerated").exists()


def test_a_setup_begun_as_another_browser_turns_the_app_on_says_so_not_a_500(
    signed_in, user, monkeypatch
):
    """The setup form looks for an app, then replaces an unconfirmed seed and makes one:
    another browser's confirm committing between the two had made the person's one
    authenticator row, and the new one broke its one-to-one key (a 500)."""
    from accounts.two_factor import enrolment_start
    from accounts.views import two_factor as views

    enrolment_start(user)
    TotpDevice.objects.filter(user=user).update(confirmed_at=timezone.now())  # the other's
    real = views.has_authenticator_app
    calls: list[object] = []

    def looked_before_the_commit(person):
        calls.append(person)
        return False if len(calls) == 1 else real(person)

    monkeypatch.setattr(views, "has_authenticator_app", looked_before_the_commit)
    answer = signed_in.post(reverse("accounts:totp_setup"), follow=True)
    assert answer.status_code == 200
    assert "An authenticator app is already on." in answer.content.decode()
    assert TotpDevice.objects.get(user=user).confirmed_at is not None
