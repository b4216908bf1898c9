"""A person sees where they are signed in and can sign other sessions out; a sign-in from
a new network is emailed to them."""

from __future__ import annotations

import secrets
from urllib.parse import quote

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client, RequestFactory
from django.urls import reverse

from accounts.models import PendingSecondStep, SignedInSession
from accounts.sessions import PENDING_STEPS_PER_PERSON
from audit.models import AuditEvent
from tests.conftest import PASSWORD

SESSIONS = reverse("accounts:account_sessions")
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0"
CHROME_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36"
)


def sign_in(ip: str, agent: str, email: str = "ada@example.com") -> Client:
    browser = Client(REMOTE_ADDR=ip, HTTP_USER_AGENT=agent)
    answer = browser.post(reverse("accounts:login"), {"username": email, "password": PASSWORD})
    assert answer.status_code == 302
    return browser


def test_each_sign_in_is_listed_with_its_device_and_address(
    user, django_capture_on_commit_callbacks
):
    laptop = sign_in("198.51.100.7", FIREFOX)
    sign_in("203.0.113.9", CHROME_MAC)
    html = laptop.get(SESSIONS).content.decode()
    assert "Firefox on Linux" in html and "Chrome on macOS" in html
    assert "198.51.100.7" in html and "203.0.113.9" in html
    assert html.count("this browser") == 1


def test_sign_out_everywhere_else_ends_the_other_sessions_only(user):
    laptop = sign_in("198.51.100.7", FIREFOX)
    phone = sign_in("203.0.113.9", CHROME_MAC)
    laptop.post(SESSIONS)
    assert phone.get(SESSIONS).status_code == 302  # back to sign in
    assert laptop.get(SESSIONS).status_code == 200
    assert SignedInSession.objects.filter(user=user).count() == 1
    assert AuditEvent.objects.filter(action="user.signed_out_elsewhere", actor=user).exists()


def test_one_session_can_be_signed_out_and_never_someone_elses(user, make_user):
    laptop = sign_in("198.51.100.7", FIREFOX)
    phone = sign_in("203.0.113.9", CHROME_MAC)
    make_user(email="bob@example.com")
    bobs = sign_in("192.0.2.1", FIREFOX, email="bob@example.com")
    phone_row = SignedInSession.objects.get(user=user, ip="203.0.113.9")
    bob_row = SignedInSession.objects.get(user__email="bob@example.com")
    laptop.post(SESSIONS, {"session": str(bob_row.pk)})
    assert bobs.get(SESSIONS).status_code == 200  # untouched
    laptop.post(SESSIONS, {"session": "²"})  # odd input: nothing happens, no error
    laptop.post(SESSIONS, {"session": str(phone_row.pk)})
    assert phone.get(SESSIONS).status_code == 302
    assert not Session.objects.filter(session_key=phone_row.session_key).exists()


def test_a_sign_in_from_a_new_network_is_emailed_but_not_the_first_or_a_known_one(
    user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        sign_in("198.51.100.7", FIREFOX)  # the first sign-in recorded: nothing to compare
        sign_in("198.51.100.200", FIREFOX)  # the same /24
    assert mail.outbox == []
    with django_capture_on_commit_callbacks(execute=True):
        sign_in("203.0.113.9", "evil\nBcc: x@example.com")
    [message] = mail.outbox
    assert message.to == [user.email] and "203.0.113.9" in message.body
    assert "\n" not in message.subject and not message.bcc


def test_a_token_in_the_user_agent_is_neither_kept_nor_mailed(
    user, django_capture_on_commit_callbacks
):
    secret = "reminix_sk_" + "A1b2C3d4" * 6
    with django_capture_on_commit_callbacks(execute=True):
        sign_in("198.51.100.7", FIREFOX)
        sign_in("203.0.113.9", f"curl/8.0 {secret}")
    row = SignedInSession.objects.get(user=user, ip="203.0.113.9")
    assert secret not in row.user_agent and "reminix_sk_[redacted]" in row.user_agent
    [message] = mail.outbox
    assert secret not in message.body


def test_a_percent_escaped_token_in_the_user_agent_is_neither_kept_nor_mailed(
    user, django_capture_on_commit_callbacks
):
    """As the usage log reads one (core.redact.redact_tokens_escaped): "reminix%5Fsk%5F…"
    is a working token to whoever decodes it, and the Sessions page lists the row."""
    secret = "reminix_sk_" + "A1b2C3d4" * 4 + "A1b2"
    with django_capture_on_commit_callbacks(execute=True):
        sign_in("198.51.100.7", FIREFOX)
        sign_in("203.0.113.9", "curl/8.0 " + secret.replace("_", "%255F"))
    row = SignedInSession.objects.get(user=user, ip="203.0.113.9")
    assert "A1b2" not in row.user_agent and "reminix_sk_[redacted]" in row.user_agent
    [message] = mail.outbox
    assert "A1b2" not in message.body


def test_signing_out_removes_the_row_and_a_password_change_clears_the_others(user):
    laptop = sign_in("198.51.100.7", FIREFOX)
    sign_in("203.0.113.9", CHROME_MAC)
    laptop.post(
        reverse("accounts:password_change"),
        {
            "old_password": PASSWORD,
            "new_password1": "a new long passphrase 7",
            "new_password2": "a new long passphrase 7",
        },
    )
    assert SignedInSession.objects.filter(user=user).count() == 1
    laptop.post(reverse("accounts:logout"))
    assert SignedInSession.objects.filter(user=user).count() == 0


def test_a_session_from_before_sessions_were_recorded_is_listed_and_can_be_ended(user):
    old = sign_in("198.51.100.7", FIREFOX)
    SignedInSession.objects.all().delete()  # as if it signed in before this feature
    session = old.session
    session["_seen_at"] = "2000-01-01T00:00:00+00:00"
    session.save()
    assert old.get(SESSIONS).status_code == 200  # seen: its row is made now
    assert SignedInSession.objects.filter(user=user).count() == 1
    laptop = sign_in("203.0.113.9", CHROME_MAC)
    laptop.post(SESSIONS)
    assert old.get(SESSIONS).status_code == 302


def test_an_empty_session_field_signs_nobody_out(user):
    laptop = sign_in("198.51.100.7", FIREFOX)
    phone = sign_in("203.0.113.9", CHROME_MAC)
    laptop.post(SESSIONS, {"session": ""})
    assert phone.get(SESSIONS).status_code == 200


def test_a_session_named_in_other_digits_signs_nobody_out(user):
    """The page's buttons send ASCII digits; int() would also read "٣" (Arabic-Indic) or
    "²" as a number, so a mangled or crafted field could end a session nobody chose."""
    laptop = sign_in("198.51.100.7", FIREFOX)
    phone = sign_in("203.0.113.9", CHROME_MAC)
    row = SignedInSession.objects.get(session_key=phone.session.session_key)
    arabic_indic = "".join(chr(0x660 + int(digit)) for digit in str(row.pk))
    laptop.post(SESSIONS, {"session": arabic_indic})
    laptop.post(SESSIONS, {"session": f" {row.pk} "})
    assert phone.get(SESSIONS).status_code == 200


def test_a_password_reset_signs_out_every_session(user, client):
    import re

    laptop = sign_in("198.51.100.7", FIREFOX)
    client.post(reverse("accounts:password_reset"), {"email": user.email})
    link = re.search(r"/account/password/reset/\S+/", mail.outbox[-1].body).group(0)
    form = client.get(link, follow=True)
    client.post(
        form.redirect_chain[-1][0],
        {
            "new_password1": "another long passphrase 9",
            "new_password2": "another long passphrase 9",
        },
    )
    assert laptop.get(SESSIONS).status_code == 302
    assert not SignedInSession.objects.filter(user=user).exists()


def test_an_htmx_request_after_the_session_ended_loads_the_sign_in_page_whole(client, project):
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    new_key = reverse("apikeys:api_key_create", args=[project.slug])
    # Not signed in (any more): the XMLHttpRequest must not follow a redirect to the
    # sign-in page and swap it into the key dialog.
    response = client.get(
        new_key,
        headers={"HX-Request": "true", "HX-Current-URL": f"http://testserver{keys}?page=2"},
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next={quote(keys + '?page=2')}"

    # A current page on another origin is not where sign-in sends anyone back to.
    response = client.post(
        new_key, headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/x"}
    )
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next={quote(new_key)}"

    # A region reloading itself on a timer stops and says so: nobody clicked anything.
    response = client.get(new_key, headers={"HX-Request": "true", "X-Background-Refresh": "true"})
    assert response.status_code == 302
    assert "HX-Redirect" not in response

    # Without htmx, the ordinary redirect.
    response = client.get(new_key)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next={quote(new_key)}"
    assert "HX-Redirect" not in response


def test_htmx_redirects_other_than_to_sign_in_are_left_alone(htmx, project):
    # Signed in, home redirects to the project: htmx follows that one itself.
    response = htmx.get(reverse("home"))
    assert response.status_code == 302
    assert response["Location"] == reverse("overview:project_overview", args=[project.slug])
    assert "HX-Redirect" not in response


def test_past_the_cap_a_sign_in_signs_out_the_sessions_least_recently_seen(user, monkeypatch):
    monkeypatch.setattr("accounts.sessions.MAX_SESSIONS_PER_PERSON", 3)
    browsers = [sign_in(f"198.51.100.{n}", FIREFOX) for n in range(1, 4)]
    SignedInSession.objects.filter(ip="198.51.100.2").update(last_seen_at="2026-01-01T00:00Z")
    newest = sign_in("203.0.113.9", CHROME_MAC)
    rows = SignedInSession.objects.filter(user=user)
    assert sorted(rows.values_list("ip", flat=True)) == [
        "198.51.100.1",
        "198.51.100.3",
        "203.0.113.9",
    ]
    assert browsers[1].get(SESSIONS).status_code == 302  # signed out: back to sign in
    for browser in (browsers[0], browsers[2], newest):
        assert browser.get(SESSIONS).status_code == 200
    assert Session.objects.filter(session_key__in=rows.values("session_key")).count() == 3


@pytest.mark.parametrize("current", ["http://[::1", "http://testserver]/keys"])
def test_an_unreadable_current_url_sends_sign_in_back_to_the_request_not_a_500(
    client, project, current
):
    """Found in review: htmx's HX-Current-URL, read with urlsplit, raised ValueError for a
    bracket without its pair (anyone could send one): a 500 instead of the sign-in page."""
    new_key = reverse("apikeys:api_key_create", args=[project.slug])
    response = client.get(new_key, headers={"HX-Request": "true", "HX-Current-URL": current})
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('accounts:login')}?next={quote(new_key)}"


def test_right_passwords_of_an_account_with_a_second_factor_keep_a_few_sessions_waiting(
    user, client
):
    """Each right password, sent without a cookie, began a second step in a new session,
    kept 14 days whether or not a code followed: as many as its owner cared to send. Past
    a person's few steps waiting at once, a new one ends the oldest."""
    from tests.accounts.test_two_factor import enrol, next_code

    client.force_login(user)
    secret, _ = enrol(client)
    client.logout()
    sessions = Session.objects.count()
    waiting = []
    for _ in range(PENDING_STEPS_PER_PERSON + 15):
        browser = Client()
        answer = browser.post(
            reverse("accounts:login"), {"username": user.email, "password": PASSWORD}
        )
        assert answer.url == reverse("accounts:login_code")
        waiting.append(browser)
    assert Session.objects.count() == sessions + PENDING_STEPS_PER_PERSON
    # The newest ones go on to the code; the oldest start again from the password.
    assert waiting[0].get(reverse("accounts:login_code")).url == reverse("accounts:login")
    newest = waiting[-1]
    answer = newest.post(reverse("accounts:login_code"), {"code": next_code(secret)})
    assert answer.status_code == 302
    assert newest.session["_auth_user_id"] == str(user.pk)
    assert Session.objects.count() == sessions + PENDING_STEPS_PER_PERSON
    assert not PendingSecondStep.objects.filter(session_key=newest.session.session_key)


def test_the_second_steps_of_one_person_do_not_end_anothers(user, make_user):
    from tests.accounts.test_two_factor import enrol

    other = make_user(email="other@example.com")
    for person in (user, other):
        browser = Client()
        browser.force_login(person)
        enrol(browser)
    theirs = Client()
    theirs.post(reverse("accounts:login"), {"username": other.email, "password": PASSWORD})
    for _ in range(PENDING_STEPS_PER_PERSON + 1):
        Client().post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    assert theirs.get(reverse("accounts:login_code")).status_code == 200


def _full_messages_cookie() -> str:
    """A messages cookie with no room for one more note, as a script gets that asks a page
    with a note for someone signed out (the code page's "Sign in again") a few thousand
    times and never reads the page the note is for."""
    storage = CookieStorage(RequestFactory().get("/"))
    notes: list[Message] = []
    while len(storage._encode(notes, encode_empty=True)) < storage.max_cookie_size - 20:
        notes.append(Message(constants.INFO, secrets.token_hex(4)))
    return storage._encode(notes)


def test_a_note_for_someone_signed_out_with_a_full_messages_cookie_writes_no_session(db):
    """Django's default message storage keeps what the cookie cannot hold in the session:
    each such request, sent without a session cookie, stored a session row, kept 14 days.
    The oldest notes give way instead, and the new one is shown."""
    full = _full_messages_cookie()
    sessions = Session.objects.count()
    for _ in range(20):
        browser = Client()
        browser.cookies["messages"] = full
        answer = browser.get(reverse("accounts:login_code"))
        assert answer.url == reverse("accounts:login")
        assert "sessionid" not in answer.cookies
    assert Session.objects.count() == sessions
    page = browser.get(answer.url).content.decode()
    assert "Sign in again: the code step waits at most 5 minutes." in page


def test_a_second_step_begun_again_in_the_same_browser_does_not_count_its_old_session(user):
    """Each right password gives the browser's session a new key, and a passkey sign-in
    does too: the step's row for the old key waited for nothing, yet counted, so a person
    starting again in one browser pushed out the step waiting in another."""
    from tests.accounts.test_two_factor import enrol

    browser = Client()
    browser.force_login(user)
    enrol(browser)
    browser.logout()
    sign_in_form = {"username": user.email, "password": PASSWORD}
    laptop, phone = Client(), Client()
    laptop.post(reverse("accounts:login"), sign_in_form)
    for _ in range(PENDING_STEPS_PER_PERSON + 1):
        assert phone.post(reverse("accounts:login"), sign_in_form).url == reverse(
            "accounts:login_code"
        )
    assert laptop.get(reverse("accounts:login_code")).status_code == 200
    assert PendingSecondStep.objects.filter(user=user).count() == 2
