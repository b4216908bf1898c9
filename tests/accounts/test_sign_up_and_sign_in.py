import re
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.models import Membership, Project, User
from agents.models import Agent
from audit.models import AuditEvent
from tests.conftest import PASSWORD

LOGIN = reverse("accounts:login")
SIGNUP = reverse("accounts:signup")


def sign_in(client: Client, email: str, password: str, **extra):
    return client.post(LOGIN, {"username": email, "password": password}, **extra)


def test_sign_up_creates_the_user_their_first_project_and_its_starter_agent(client, db):
    response = client.post(
        SIGNUP,
        {
            "name": "Grace Hopper",
            "email": "Grace@Example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    # "Check your inbox", as for an address that has an account: not signed in yet.
    assert response.status_code == 200 and "Check your inbox" in response.content.decode()
    user = User.objects.get(email="grace@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Membership.Role.OWNER
    assert membership.project.name == "Grace's project"
    assert Agent.objects.filter(project=membership.project, name="my-agent", kind="echo").exists()
    assert "_auth_user_id" not in client.session
    assert not user.email_verified
    assert mail.outbox[-1].to == ["grace@example.com"]
    assert "/account/verify/" in mail.outbox[-1].body
    assert AuditEvent.objects.filter(action="user.signed_up", actor=user).exists()


def test_sign_up_errors_stand_beside_their_field_and_keep_the_input(client, user):
    response = client.post(
        SIGNUP,
        {"name": "Someone", "email": user.email, "password1": "short", "password2": "other"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    # Whether the email has an account is never said on the page.
    assert 'id="id_email_error"' not in html
    assert 'id="id_password2_error"' in html
    assert 'value="Someone"' in html
    assert User.objects.count() == 1


def test_a_token_pasted_as_the_name_is_refused_beside_it_and_not_shown_back(client, db):
    """The name is shown to every member of the person's projects and in invitation
    mails: a secret pasted into it would be kept in clear and shown to all of them."""
    token = "reminix_pat_" + "Zq7" * 12
    response = client.post(
        SIGNUP,
        {
            "name": f"Ada {token}",
            "email": "ada@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    html = response.content.decode()
    assert response.status_code == 200 and 'id="id_name_error"' in html
    assert "looks like a Reminix token" in html
    assert "Zq7Zq7" not in html
    assert 'value="ada@example.com"' in html  # the rest of the input is kept
    assert not User.objects.exists()


def test_signing_in_rotates_the_session_key(client, user):
    client.get(LOGIN)
    client.session.save()
    before = client.session.session_key
    response = sign_in(client, user.email, PASSWORD)
    assert response.status_code == 302
    assert client.session.session_key != before


def test_sign_in_is_case_insensitive_on_email(client, user):
    response = sign_in(client, "ADA@example.COM", PASSWORD)
    assert response.status_code == 302


def test_a_wrong_password_and_an_unknown_email_read_the_same(client, user):
    wrong_password = sign_in(client, user.email, "not the password").content.decode()
    unknown_email = sign_in(client, "nobody@example.com", "not the password").content.decode()
    message = "That email and password don&#x27;t match an account."
    assert message in wrong_password
    assert message in unknown_email
    # The pages differ only in the email echoed back into the field.
    assert normalised(wrong_password.replace(user.email, "X")) == normalised(
        unknown_email.replace("nobody@example.com", "X")
    )


def normalised(html: str) -> str:
    """The page without what changes on every response: CSRF tokens and CSP nonces."""
    html = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)
    html = re.sub(r'"x-csrftoken": "[^"]+"', "", html)
    return re.sub(r'nonce="[^"]+"', "", html)


def test_five_failures_lock_out_the_email_even_with_the_right_password(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, user.email, "wrong", REMOTE_ADDR="10.0.0.1")
    # A different address does not help: the email itself is locked.
    response = sign_in(client, user.email, PASSWORD, REMOTE_ADDR="10.0.0.2")
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_lockout_of_an_unknown_email_looks_the_same_as_of_a_real_one(client, user, settings):
    pages = []
    for email, address in (("ada@example.com", "10.0.1.1"), ("ghost@example.com", "10.0.2.1")):
        for _ in range(settings.AXES_FAILURE_LIMIT):
            sign_in(client, email, "wrong", REMOTE_ADDR=address)
        response = sign_in(client, email, "wrong", REMOTE_ADDR=address)
        assert response.status_code == 429
        pages.append(response.content.decode())
    assert normalised(pages[0].replace("ada@example.com", "X")) == normalised(
        pages[1].replace("ghost@example.com", "X")
    )


def test_many_failures_from_one_address_lock_out_that_address(client, make_user, settings):
    victim = make_user(email="victim@example.com")
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{n}@example.com", "wrong", REMOTE_ADDR="192.0.2.9")
    response = sign_in(client, victim.email, PASSWORD, REMOTE_ADDR="192.0.2.9")
    assert response.status_code == 429
    # Another address can still sign in to the untouched account.
    assert sign_in(Client(), victim.email, PASSWORD, REMOTE_ADDR="192.0.2.10").status_code == 302


def test_the_right_password_from_a_locked_out_address_does_not_lock_the_account(
    client, make_user, settings
):
    """A shared NAT: someone else's guessing locked the address; a colleague behind it who
    keeps trying with the right password is refused there, but their account is not
    charged with failures, so elsewhere they sign in."""
    colleague = make_user(email="colleague@example.com")
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{n}@example.com", "wrong", REMOTE_ADDR="192.0.2.9")
    for _ in range(settings.AXES_FAILURE_LIMIT * 2):
        refused = sign_in(Client(), colleague.email, PASSWORD, REMOTE_ADDR="192.0.2.9")
        assert refused.status_code == 429
    elsewhere = sign_in(Client(), colleague.email, PASSWORD, REMOTE_ADDR="198.51.100.7")
    assert elsewhere.status_code == 302


def test_failed_sign_ins_write_a_bounded_number_of_audit_rows(client, user, settings):
    from accounts import signals

    settings.AXES_FAILURE_LIMIT = 3
    # Hammering a real account from one address: 2 failures, then the third locks it out,
    # and from there on at most the cap.
    for _ in range(40):
        sign_in(Client(), user.email, "wrong", REMOTE_ADDR="203.0.113.5")
    on_account = AuditEvent.objects.filter(action="user.sign_in_failed", actor=user).count()
    assert on_account == 2 + signals.LOCKED_OUT_ROWS_PER_HOUR
    # Unknown emails from many addresses: never more than the hourly cap in all.
    signals_cap = signals.UNKNOWN_EMAIL_ROWS_PER_HOUR
    signals.UNKNOWN_EMAIL_ROWS_PER_HOUR = 5
    try:
        for n in range(12):
            sign_in(Client(), f"nobody{n}@example.com", "wrong", REMOTE_ADDR=f"10.9.0.{n}")
    finally:
        signals.UNKNOWN_EMAIL_ROWS_PER_HOUR = signals_cap
    unknown = AuditEvent.objects.filter(action="user.sign_in_failed", actor=None).count()
    assert unknown == 5


def test_a_forged_forwarded_for_header_does_not_escape_the_address_lockout(
    client, make_user, settings
):
    victim = make_user(email="victim@example.com")
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(
            client,
            f"guess{n}@example.com",
            "wrong",
            REMOTE_ADDR="192.0.2.9",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        )
    response = sign_in(client, victim.email, PASSWORD, REMOTE_ADDR="192.0.2.9")
    assert response.status_code == 429


def test_sign_out_needs_a_post_and_ends_the_session(signed_in):
    asked = signed_in.get(reverse("accounts:logout"))  # a link signs nobody out: it asks
    assert asked.status_code == 200 and "_auth_user_id" in signed_in.session
    response = signed_in.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in signed_in.session


def test_signing_out_is_on_the_persons_audit_trail(signed_in, user, client):
    signed_in.post(reverse("accounts:logout"), REMOTE_ADDR="203.0.113.7")
    event = AuditEvent.objects.get(action="user.signed_out")
    assert (event.actor, event.ip_address) == (user, "203.0.113.7")
    client.post(reverse("accounts:logout"))  # nobody signed in: nothing to record
    assert AuditEvent.objects.filter(action="user.signed_out").count() == 1


def test_pages_need_a_signed_in_user(client, project):
    response = client.get(reverse("overview:project_overview", args=[project.slug]))
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_password_reset_mails_a_link_that_sets_a_new_password(client, user):
    response = client.post(reverse("accounts:password_reset"), {"email": user.email})
    assert response.status_code == 302
    assert len(mail.outbox) == 1
    link = next(line for line in mail.outbox[0].body.splitlines() if "/password/reset/" in line)
    path = urlsplit(link).path
    form_page = client.get(path, follow=True)
    assert form_page.status_code == 200
    set_url = form_page.redirect_chain[-1][0]
    new_password = "a brand new passphrase 42"
    done = client.post(set_url, {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)
    event = AuditEvent.objects.get(action="user.password_changed", actor=user)
    assert event.metadata == {"via": "reset link"}


def _reset_link_path(user) -> str:
    Client().post(reverse("accounts:password_reset"), {"email": user.email})
    link = next(line for line in mail.outbox[-1].body.splitlines() if "/password/reset/" in line)
    return urlsplit(link).path


def test_opening_a_reset_link_writes_no_session(client, user):
    """Whoever holds a link (anyone can sign up and ask for one) could open it again and
    again without a cookie: each visit stored a session row holding its token, kept for
    14 days. The token waits in a cookie of the browser instead, for its one page."""
    path = _reset_link_path(user)
    sessions = Session.objects.count()
    for _ in range(20):
        opened = Client().get(path)
        assert opened.status_code == 302 and opened["Location"].endswith("/set-password/")
        assert settings.SESSION_COOKIE_NAME not in opened.cookies
    assert Session.objects.count() == sessions
    opened = client.get(path)
    cookie = opened.cookies["password_reset"]
    assert cookie["path"] == opened["Location"] and cookie["httponly"]
    assert cookie["samesite"] == "Lax" and cookie["max-age"] == settings.PASSWORD_RESET_TIMEOUT
    new_password = "a brand new passphrase 42"
    done = client.post(
        opened["Location"], {"new_password1": new_password, "new_password2": new_password}
    )
    assert done.status_code == 302 and done.cookies["password_reset"]["max-age"] == 0
    assert Session.objects.count() == sessions
    user.refresh_from_db()
    assert user.check_password(new_password)


def test_with_secure_cookies_the_reset_token_cookie_is_secure_only(client, user, settings):
    settings.SESSION_COOKIE_SECURE = True
    path = _reset_link_path(user)
    opened = client.get(path, secure=True)
    cookie = opened.cookies["__Secure-password_reset"]
    assert cookie["secure"] and cookie["path"] == opened["Location"]
    assert client.get(opened["Location"], secure=True).context["validlink"]


def test_the_set_password_page_needs_the_token_its_link_left_in_this_browser(client, user):
    path = _reset_link_path(user)
    set_password = client.get(path)["Location"]
    elsewhere = Client()
    refused = elsewhere.post(set_password, {"new_password1": "x" * 12, "new_password2": "x" * 12})
    assert refused.status_code == 200 and "This link has expired" in refused.content.decode()
    other = User.objects.create_user(email="other@example.com", password=PASSWORD)
    others_page = set_password.replace(path.split("/")[-3], _uid(other))
    assert "This link has expired" in client.get(others_page).content.decode()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_reset_link_with_its_account_spelled_oddly_keeps_its_token_for_the_accounts_page(
    client, db
):
    """base64 decoding skips what is not base64, and stops at padding: `Nw==; Domain=…`
    names the same account as `Nw`. The cookie's path was the request's spelling, so the
    link's opener wrote the cookie's attributes (a Domain, a Max-Age), or a NUL that the
    server refuses to send (a 500 under gunicorn)."""
    user = User.objects.create_user(pk=7, email="mei@example.com", password=PASSWORD)
    path = _reset_link_path(user)
    head, uid, token = path.rsplit("/", 3)[:3]
    assert uid == "Nw"
    page = f"{head}/{uid}/set-password/"
    for odd in ("%3D%3D;%20Domain=example.com;%20Max-Age=99999999", "%00"):
        opened = Client().get(f"{head}/{uid}{odd}/{token}/")
        assert opened.status_code == 302 and opened["Location"] == page
        cookie = opened.cookies["password_reset"]
        assert cookie["path"] == page and not cookie["domain"]
        assert cookie["max-age"] == settings.PASSWORD_RESET_TIMEOUT
    opened = client.get(f"{head}/{uid}%3D%3D;x/{token}/", follow=True)
    assert opened.context["validlink"]
    new_password = "a brand new passphrase 42"
    done = client.post(page, {"new_password1": new_password, "new_password2": new_password})
    assert done.status_code == 302 and done.cookies["password_reset"]["path"] == page
    assert done.cookies["password_reset"]["max-age"] == 0
    user.refresh_from_db()
    assert user.check_password(new_password)


def _uid(user) -> str:
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    return urlsafe_base64_encode(force_bytes(user.pk))


def test_the_password_reset_link_points_at_the_dashboard_whatever_host_was_asked(
    client, user, settings
):
    """The link was built from the request's Host header: a reset asked for through any
    name ALLOWED_HOSTS takes (another of our names, a wildcard, a proxy passing it on)
    mailed the account's owner a link, with its token, to that host."""
    settings.DASHBOARD_URL = "https://dashboard.example.com"
    client.post(reverse("accounts:password_reset"), {"email": user.email}, HTTP_HOST="localhost")
    link = next(line for line in mail.outbox[0].body.splitlines() if "/password/reset/" in line)
    assert link.startswith("https://dashboard.example.com/account/password/reset/"), link


def test_password_reset_answers_the_same_for_an_unknown_email(client, user):
    """The same page, and the same work behind it: a mail goes either way (a link to the
    account, or word that no account uses the address), as sign-up does. Sending mail
    only for accounts would let the answer's time tell which addresses have one."""
    known = client.post(reverse("accounts:password_reset"), {"email": user.email})
    unknown = client.post(reverse("accounts:password_reset"), {"email": "ghost@example.com"})
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"]
    assert [m.to for m in mail.outbox] == [[user.email], ["ghost@example.com"]]
    link = re.compile(r"/account/password/reset/[^/\s]+/[^/\s]+/")
    assert link.search(mail.outbox[0].body)
    assert "no Reminix account" in mail.outbox[1].body and not link.search(mail.outbox[1].body)


def test_changing_the_password_signs_out_other_sessions_but_keeps_this_one(user):
    this_browser, other_browser = Client(), Client()
    for browser in (this_browser, other_browser):
        assert sign_in(browser, user.email, PASSWORD).status_code == 302
    new_password = "another long passphrase 7"
    response = this_browser.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert response.status_code == 302
    home = reverse("home")
    assert this_browser.get(home).status_code == 302
    assert this_browser.get(home)["Location"] != LOGIN
    assert other_browser.get(home)["Location"] == LOGIN


def test_every_new_project_page_belongs_to_the_signed_in_user(signed_in, project):
    response = signed_in.get(reverse("home"))
    assert response["Location"] == reverse("overview:project_overview", args=[project.slug])


def test_signing_in_to_ones_own_account_does_not_reset_the_count_against_another(
    client, make_user, settings
):
    victim = make_user(email="victim@example.com")
    attacker = make_user(email="attacker@example.com")
    answers = []
    for _ in range(3):
        for _ in range(settings.AXES_FAILURE_LIMIT - 1):
            answers.append(sign_in(client, victim.email, "guess", REMOTE_ADDR="192.0.2.50"))
        sign_in(Client(), attacker.email, PASSWORD, REMOTE_ADDR="192.0.2.50")
    assert answers[-1].status_code == 429
    assert sign_in(Client(), victim.email, PASSWORD, REMOTE_ADDR="198.51.100.1").status_code == 429


def test_sign_ups_from_one_address_are_limited(client, db):
    answers = []
    for n in range(12):
        answers.append(
            client.post(
                SIGNUP,
                {"email": f"bulk{n}@example.com", "password1": PASSWORD, "password2": PASSWORD},
                REMOTE_ADDR="192.0.2.80",
            )
        )
        client.logout()
    assert [a.status_code for a in answers[:10]] == [200] * 10
    assert answers[10].status_code == 429
    assert "Too many accounts" in answers[10].content.decode()
    assert User.objects.count() == 10


def test_password_reset_mails_stop_after_three_an_hour_but_the_page_reads_the_same(client, user):
    answers = [
        client.post(reverse("accounts:password_reset"), {"email": user.email}) for _ in range(5)
    ]
    assert {a["Location"] for a in answers} == {reverse("accounts:password_reset_done")}
    assert len(mail.outbox) == 3


def test_plus_tags_and_a_rotating_ipv6_host_count_as_one_for_reset_mails(client, db):
    """The limits count the inbox (`ghost+1@` is `ghost@`) and, for IPv6, the /64 a host
    holds: otherwise each variant was a fresh three mails to a stranger's inbox."""
    url = reverse("accounts:password_reset")
    for n in range(5):
        client.post(url, {"email": f"ghost+{n}@example.com"}, REMOTE_ADDR=f"2001:db8::{n + 1}")
    assert len(mail.outbox) == 3
    for n in range(25):
        client.post(url, {"email": f"p{n}@example.com"}, REMOTE_ADDR=f"2001:db8:0:1::{n + 1}")
    assert len(mail.outbox) == 3 + 20


def test_no_account_mails_stop_at_a_site_wide_cap_and_without_a_counter(client, db, monkeypatch):
    import accounts.views.password
    import core.counters

    monkeypatch.setattr(accounts.views.password, "NO_ACCOUNT_MAILS_PER_HOUR", 2)
    url = reverse("accounts:password_reset")
    for n in range(4):
        answer = client.post(
            url, {"email": f"stranger{n}@example.com"}, REMOTE_ADDR=f"198.51.100.{n}"
        )
        assert answer["Location"] == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 2

    def no_cache(*args, **kwargs):
        raise ConnectionError("redis down")

    monkeypatch.setattr(core.counters, "window_count", no_cache)
    monkeypatch.setattr(accounts.views.password, "NO_ACCOUNT_MAILS_PER_HOUR", 200)
    client.post(url, {"email": "one.more@example.com"}, REMOTE_ADDR="203.0.113.9")
    assert len(mail.outbox) == 2  # a courtesy: not sent when it cannot be counted


def test_a_fresh_session_lands_in_the_users_own_first_project_not_one_they_were_added_to(
    client, user, project, make_user
):
    other = make_user(email="mallory@example.com")
    from accounts.services import membership_add, project_create

    lure = project_create(name="AAA Ada's project", owner=other)
    membership_add(project=lure, user=user, role="owner", by=other)
    client.force_login(user)
    assert client.get(reverse("home"))["Location"] == reverse(
        "overview:project_overview", args=[project.slug]
    )


def test_a_very_long_first_name_still_makes_a_project(client, db):
    response = client.post(
        SIGNUP,
        {
            "name": "A" * 140,
            "email": "long@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert response.status_code == 200
    assert Project.objects.get(memberships__user__email="long@example.com").name.endswith(
        "'s project"
    )


def test_password_changes_and_resets_are_in_the_audit_trail(client, user):
    client.force_login(user)
    new_password = "another long passphrase 9"
    client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": new_password, "new_password2": new_password},
    )
    assert AuditEvent.objects.filter(action="user.password_changed", actor=user).count() == 1


def test_two_sign_ups_for_one_email_at_once_both_read_check_your_inbox(client, db, monkeypatch):
    """Both pass the "has it an account?" check before either is written; the second
    write then meets the unique email. It reads as any sign-up for a taken address (no
    500, nothing said about the other), and that address's owner is told."""
    import accounts.views.sign_up
    from accounts.services import user_sign_up

    def the_other_one_first(**kwargs):
        user_sign_up(**kwargs)  # the request that won the race
        return user_sign_up(**kwargs)

    monkeypatch.setattr(accounts.views.sign_up, "user_sign_up", the_other_one_first)
    email = "twice@example.com"
    data = {"email": email, "password1": PASSWORD, "password2": PASSWORD}
    response = client.post(SIGNUP, data)
    assert response.status_code == 200 and "We sent an email to" in response.content.decode()
    assert User.objects.filter(email=email).count() == 1
    assert [m.subject for m in mail.outbox] == ["[Reminix] Your email address was used to sign up"]


def test_spellings_of_one_inbox_count_as_one_for_reset_mails(client, db):
    """A quoted or escaped local part, and a domain in full-width letters or with soft
    hyphens or zero-width spaces in it, are each delivered to the same inbox (the local part
    unquoted, the domain IDNA-encoded), so each counted as an inbox of its own: three more
    mails an hour to one stranger for every spelling, and there is no end of them."""
    url = reverse("accounts:password_reset")
    spellings = [
        "victim@example.com",
        '"victim"@example.com',
        '"vic\\tim"@example.com',
        '"victim+1"@example.com',
        "victim@ｅｘａｍｐｌｅ.com",
        "victim@exam\u00adple.com",
        "victim@ex\u00adam\u00adple.com",
        "victim@example.com\u200b",
        "VICTIM@EXAMPLE.COM",
    ]
    for n, email in enumerate(spellings):
        client.post(url, {"email": email}, REMOTE_ADDR=f"198.51.100.{n + 1}")
    delivered = [m.message()["To"] for m in mail.outbox]
    assert len(delivered) == 3, delivered
    assert {to.lower() for to in delivered} == {"victim@example.com"}


def test_sign_ups_naming_one_inbox_mail_it_three_times_an_hour_from_anywhere(client, user):
    """Each sign-up with an address that has an account mails its owner, and each with a
    new `+tag` of it mails a link there: counted by the asker's address alone, an IPv6 host
    (a whole /64 of addresses) or a few networks could fill a stranger's inbox. Past three
    an hour the page reads the same and nothing more goes."""
    local, domain = user.email.split("@")
    # The domain in full-width letters (ｅｘａｍｐｌｅ.com) reaches the same inbox.
    wide = "".join(chr(ord(c) + 0xFEE0) if c.isalpha() else c for c in domain)
    spellings = [user.email, user.email.upper(), f"{local}+1@{domain}", f"{local}@{wide}"]
    for n in range(8):
        answer = client.post(
            SIGNUP,
            {"email": spellings[n % 4], "password1": PASSWORD, "password2": PASSWORD},
            REMOTE_ADDR=f"2001:db8:{n}::1",
        )
        assert answer.status_code == 200
        assert "Check your inbox" in answer.content.decode()
        client.logout()
    assert len(mail.outbox) == 3


def test_sign_ups_from_one_ipv6_host_are_limited_by_its_64(client, db):
    for n in range(11):
        answer = client.post(
            SIGNUP,
            {"email": f"bulk{n}@example.com", "password1": PASSWORD, "password2": PASSWORD},
            REMOTE_ADDR=f"2001:db8::{n + 1}",
        )
        client.logout()
    assert answer.status_code == 429
    assert User.objects.count() == 10


def test_gmail_addresses_spelled_with_dots_count_as_one_inbox_for_reset_mails(client, db):
    """Gmail ignores dots in the name and takes googlemail.com for gmail.com: each of the
    hundreds of ways to place dots in a name was a fresh count for one person's inbox."""
    url = reverse("accounts:password_reset")
    spellings = ["victim@gmail.com", "v.ictim@gmail.com", "vi.c.tim@gmail.com", "victim.@gmail.com",
                 "v.i.c.t.i.m@googlemail.com", "Vic.Tim@GMail.com"]  # fmt: skip
    for n, email in enumerate(spellings):
        client.post(url, {"email": email}, REMOTE_ADDR=f"198.51.100.{n + 1}")
    assert len(mail.outbox) == 3


def test_an_over_long_sign_in_address_is_refused_before_its_spelling_is_worked_out(
    client, user, monkeypatch
):
    """Found in review: the sign-in field has no length validator, and every address typed
    went through IDNA (User.objects.address_kept) before its length was checked: a body
    of a million full-width one-letter labels held a worker for seconds, for anyone."""
    import accounts.models

    worked_out = []
    monkeypatch.setattr(
        accounts.models, "delivery_address", lambda address: worked_out.append(address) or address
    )
    answer = client.post(
        reverse("accounts:login"), {"username": "a@" + "ｂ." * 200, "password": PASSWORD}
    )
    assert answer.status_code == 200
    assert "don&#x27;t match an account" in answer.content.decode()
    assert worked_out == []


def test_failures_from_one_ipv6_host_count_as_one_address_by_its_64(client, make_user, settings):
    """A host on IPv6 picks any of its /64's addresses for each request: counted per
    address, it could guess a few passwords on every account (a password spray) without
    its address ever being locked out. The /64 counts as one, as for the other limits."""
    victim = make_user(email="victim@example.com")
    for n in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, f"guess{n}@example.com", "wrong", REMOTE_ADDR=f"2001:db8::{n + 1}")
    response = sign_in(client, victim.email, PASSWORD, REMOTE_ADDR="2001:db8::ff")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
    # Another /64 is another host.
    elsewhere = sign_in(Client(), victim.email, PASSWORD, REMOTE_ADDR="2001:db8:0:1::1")
    assert elsewhere.status_code == 302


def test_a_next_address_naming_the_sign_in_page_goes_home_not_to_a_500(signed_in, client, user):
    """Anyone can send a signed-in person a link to the sign-in page whose `next` is the
    sign-in page: Django's view raised ValueError (a redirect loop) for it, a 500."""
    answer = signed_in.get(LOGIN, {"next": LOGIN})
    assert answer.status_code == 302 and answer["Location"] == reverse("home")
    signed_in.logout()
    answer = sign_in(client, user.email, PASSWORD, QUERY_STRING=f"next={LOGIN}")
    assert answer.status_code == 302 and answer["Location"] == reverse("home")


def test_a_password_typed_into_the_email_box_is_not_kept_by_the_lockout_count(client, user):
    """People type their password where the email goes. django-axes keeps each failure's
    'username' in clear in its table; only what looks like an email may be kept there."""
    from axes.models import AccessAttempt

    for typed in (PASSWORD, f"  {PASSWORD.upper()}  "):
        assert sign_in(client, typed, "anything").status_code == 200
    kept = list(AccessAttempt.objects.values_list("username", "get_data", "post_data"))
    assert kept, "the failures are still counted"
    for username, get_data, post_data in kept:
        for field in (username, get_data, post_data):
            assert PASSWORD.lower()[:8] not in field.lower()


def test_a_token_sent_with_a_failed_sign_in_is_not_kept_by_the_lockout_count(client, user, api_key):
    """django-axes keeps each failure's User-Agent, Accept, query string and form fields in
    its table for the cool-off, and the Django admin would show them: a token pasted there
    (a script's `curl -A`, a link's query, a field a client added), plainly or
    percent-escaped, is cut as the usage log and the audit trail cut it."""
    from axes.models import AccessAttempt

    _, secret = api_key
    random_part = secret[len("reminix_sk_") :]
    escaped = secret.replace("_", "%5F")
    for user_agent, accept, query, field in (
        (f"curl/8 {secret}", "text/html", f"q={secret}", secret),
        (f"curl/8 {escaped}", f"text/{escaped}", f"q={escaped}", escaped),
        (f"curl/8\n{secret}", f"*/*;{secret}", f"next=/&{secret}=1", f"a\x00{secret}"),
    ):
        answer = client.post(
            f"{LOGIN}?{query}",
            {"username": user.email, "password": "wrong", "extra": field},
            headers={"User-Agent": user_agent, "Accept": accept},
        )
        assert answer.status_code == 200
    kept = list(
        AccessAttempt.objects.values_list(
            "user_agent", "http_accept", "path_info", "get_data", "post_data"
        )
    )
    # Each failure is still counted; the first two's user agents are one once cut.
    assert sorted(AccessAttempt.objects.values_list("failures_since_start", flat=True)) == [1, 2]
    for fields in kept:
        for field in fields:
            assert random_part not in field and random_part[:12] not in field, field
    assert AccessAttempt.objects.get(user_agent="curl/8 reminix_sk_[redacted]")
    assert AccessAttempt.objects.get(user_agent="curl/8%0Areminix_sk_[redacted]")


def test_a_token_typed_as_an_address_is_kept_by_neither_the_trail_nor_the_lockout_count(
    client, user, api_key
):
    """A token can be written as an address's first part ("reminix_sk_…@example.com"):
    the audit trail keeps a failed sign-in's address and django-axes counts under it, in
    clear. Counted under its keyed hash, as any text that is no address, and kept nowhere."""
    from axes.models import AccessAttempt

    _, secret = api_key
    for typed in (f"{secret}@example.com", f"CI {secret}@example.com"):
        assert sign_in(client, typed, "wrong").status_code == 200
    random_part = secret[len("reminix_sk_") :].lower()
    kept = [
        *AuditEvent.objects.values_list("actor_email", "target_label"),
        *AccessAttempt.objects.values_list("username", "post_data"),
    ]
    assert AccessAttempt.objects.exists()
    for fields in kept:
        for field in fields:
            assert random_part[:12] not in field.lower(), field


def test_sign_ins_and_outs_are_kept_once_in_the_audit_log_not_in_axes_access_log(client, user):
    """Each sign-in and sign-out is the person's audit event, with its address and user
    agent, which the security page and the members' last sign-ins read. django-axes kept a
    second copy of both (AccessLog: address, user agent, path) that nothing read and no job
    removed, so every person's addresses stayed for good; failures still count for the
    lockout (AccessAttempt, which axes removes after the cool-off)."""
    from axes.models import AccessAttempt, AccessLog

    sign_in(client, user.email, "wrong", REMOTE_ADDR="198.51.100.4")
    assert AccessAttempt.objects.filter(username=user.email).exists()
    signed = sign_in(
        client, user.email, PASSWORD, REMOTE_ADDR="198.51.100.4", HTTP_USER_AGENT="Firefox/130"
    )
    assert signed.status_code == 302
    client.post(reverse("accounts:logout"), REMOTE_ADDR="198.51.100.4")
    event = AuditEvent.objects.get(action="user.signed_in")
    assert (event.actor, event.ip_address, event.user_agent) == (
        user,
        "198.51.100.4",
        "Firefox/130",
    )
    assert AuditEvent.objects.filter(action="user.signed_out", actor=user).exists()
    assert not AccessLog.objects.exists()


def test_the_access_log_django_axes_kept_before_is_removed_on_upgrade(user):
    """accounts/0022 removes what AccessLog holds from before: the addresses and user
    agents of every sign-in since the first, which nothing reads."""
    import importlib

    from axes.models import AccessLog
    from django.apps import apps
    from django.utils import timezone

    AccessLog.objects.create(
        username=user.email,
        ip_address="198.51.100.4",
        user_agent="Firefox/130",
        attempt_time=timezone.now(),
    )
    migration = importlib.import_module("accounts.migrations.0022_forget_axes_access_log")
    migration.forget_access_log(apps, None)
    assert not AccessLog.objects.exists()


def test_the_access_log_goes_a_bounded_batch_a_statement_outside_one_transaction(user, monkeypatch):
    """accounts/0022 removed AccessLog in one DELETE, in the migration's one transaction:
    every sign-in and sign-out since the first is a table that, on a big install, takes
    longer to delete than DB_STATEMENT_TIMEOUT (the migrate connection's too), so the
    upgrade failed, as 0019 avoids by cutting a batch at a time outside one transaction."""
    import importlib

    from axes.models import AccessLog
    from django.apps import apps
    from django.db import connection
    from django.utils import timezone

    AccessLog.objects.bulk_create(
        AccessLog(
            username=user.email,
            ip_address=f"198.51.100.{n}",
            user_agent="Firefox/130",
            attempt_time=timezone.now(),
        )
        for n in range(7)
    )
    monkeypatch.setattr("core.batched_delete.DELETE_BATCH", 3)
    deleted: list[int] = []

    def count(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql.startswith("DELETE") and AccessLog._meta.db_table in sql:
            deleted.append(context["cursor"].rowcount)
        return result

    migration = importlib.import_module("accounts.migrations.0022_forget_axes_access_log")
    with connection.execute_wrapper(count):
        migration.forget_access_log(apps, None)
    assert not AccessLog.objects.exists()
    assert sum(deleted) == 7 and max(deleted) <= 3
    assert migration.Migration.atomic is False
