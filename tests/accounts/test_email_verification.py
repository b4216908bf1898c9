"""Verified email: sign-up answers the same whether or not the address has an account, a
link confirms a new one, unconfirmed people look but do not mint or invite, and changing
the address confirms the new one and tells the old."""

from __future__ import annotations

import re
import time

from django.core import mail, signing
from django.test import Client
from django.urls import reverse

from accounts.email_verification import _SALT, verification_url
from accounts.models import Project, User
from alerts.models import AlertRules
from apikeys.models import ApiKey
from audit.models import AuditEvent
from notifications.models import NotificationPreference
from tests.conftest import HTMX, PASSWORD

SIGNUP = reverse("accounts:signup")


def sign_up(client, email: str):
    return client.post(
        SIGNUP, {"email": email, "name": "New", "password1": PASSWORD, "password2": PASSWORD}
    )


def link_in(message) -> str:
    return re.search(r"https?://\S+/account/verify/\S+/", message.body).group(0)


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def test_sign_up_answers_the_same_for_a_taken_address_and_tells_its_owner(client, user):
    fresh = sign_up(client, "fresh@example.com")
    taken = sign_up(Client(), user.email)
    assert fresh.status_code == taken.status_code == 200

    def page(answer, email: str) -> str:
        html = answer.content.decode().replace(email, "EMAIL")
        html = re.sub(r'"x-csrftoken": "[^"]+"', "", html.replace("&quot;", '"'))
        return re.sub(r'nonce="[^"]*"', "", html)

    assert page(fresh, "fresh@example.com") == page(taken, user.email)
    assert User.objects.filter(email=user.email).count() == 1
    to_owner = [m for m in mail.outbox if m.to == [user.email]]
    assert len(to_owner) == 1 and "already has one" in to_owner[0].body
    assert "/account/verify/" not in to_owner[0].body


def test_unconfirmed_people_look_but_do_not_mint_or_invite(client, db):
    sign_up(client, "fresh@example.com")
    user = User.objects.get(email="fresh@example.com")
    client.post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    project = user.memberships.get().project
    keys = reverse("apikeys:api_key_list", args=[project.slug])
    assert client.get(keys).status_code == 200
    assert "Confirm your email address" in client.get(keys).content.decode()
    create = reverse("apikeys:api_key_create", args=[project.slug])
    assert client.get(create).status_code == 403
    panel = client.get(create, headers={**HTMX, "HX-Target": "key-panel"})
    assert 'id="key-panel"' in panel.content.decode() and "Send the link again" in (
        panel.content.decode()
    )
    form = {"name": "Nope", "access": "full", "expiry": "never", "form_id": "f"}
    assert client.post(create, form).status_code == 403
    assert not ApiKey.objects.exists()
    assert client.get(reverse("apikeys:personal_token_create")).status_code == 403
    invite = reverse("accounts:project_invitation_send", args=[project.slug])
    assert client.post(invite, {"email": "x@example.com", "role": "member"}).status_code == 403


def test_unconfirmed_people_do_not_quiet_what_the_mailboxs_owner_would_inherit(client, db):
    """Whoever signs up first with someone else's address owns an account its real owner
    later takes back with a password reset (email_confirmed_by_reset ends their sessions
    and second factors). What they set meanwhile stays with the project the owner then
    uses: switching its alerts off, leaving keys found in public working, or turning off
    the owner's own alert emails would keep the owner from hearing of a leak. Those wait
    for a confirmed address, as minting does; reading them does not."""
    sign_up(client, "victim@example.com")
    squatter = User.objects.get(email="victim@example.com")
    client.post(reverse("accounts:login"), {"username": squatter.email, "password": PASSWORD})
    project = squatter.memberships.get().project
    rules = reverse("alerts:alert_rules", args=[project.slug])
    assert client.get(rules).status_code == 200
    assert client.post(rules, {}).status_code == 403  # every kind unticked: all off
    assert not AlertRules.objects.filter(project=project).exists()
    policy = reverse("accounts:project_key_policy", args=[project.slug])
    report_only = {"max_key_days": "", "max_pat_days": "", "leaked_key_action": "report"}
    assert client.post(policy, report_only).status_code == 403
    project.refresh_from_db()
    assert project.leaked_key_action == Project.LeakedKeyAction.REVOKE
    emails = reverse("notifications:preferences")
    assert client.get(emails).status_code == 200
    assert client.post(emails, {}).status_code == 403  # every box unticked: no emails
    assert not NotificationPreference.objects.exists()
    # Confirmed, the same forms save.
    client.post(path_of(verification_url(squatter, squatter.email)))
    assert client.post(rules, {}).status_code == 302
    assert AlertRules.objects.filter(project=project).exists()


def test_the_link_confirms_on_a_post_only(client, db):
    sign_up(client, "fresh@example.com")
    user = User.objects.get(email="fresh@example.com")
    url = path_of(link_in(mail.outbox[-1]))
    page = client.get(url)
    assert page.status_code == 200 and "Confirm fresh@example.com" in page.content.decode()
    user.refresh_from_db()
    assert not user.email_verified  # mail scanners open links
    assert client.post(url)["Location"] == reverse("accounts:login")
    user.refresh_from_db()
    assert user.email_verified
    assert AuditEvent.objects.filter(action="user.email_verified", actor=user).exists()
    client.post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    project = user.memberships.get().project
    create = reverse("apikeys:api_key_create", args=[project.slug])
    assert client.get(create).status_code == 200


def test_damaged_expired_and_odd_links_are_refused_clearly(client, user, monkeypatch):
    for odd in ("x", "a" * 600, "%00", "²", "e30:1:abc"):
        answer = client.get(f"/account/verify/{odd}/")
        assert answer.status_code in (400, 404), odd
    url = path_of(verification_url(user, user.email))
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 4 * 24 * 3600)
    expired = client.post(url)
    assert expired.status_code == 400 and "expired" in expired.content.decode()
    forged = signing.dumps({"u": "1 or 1", "to": "a@b.c", "was": "x"}, salt=_SALT)
    assert client.get(f"/account/verify/{forged}/").status_code == 400
    assert client.get(f"/account/verify/{signing.dumps([1, 2], salt=_SALT)}/").status_code == 400


def test_changing_the_address_confirms_the_new_one_and_tells_the_old(signed_in, user):
    old = user.email
    answer = signed_in.post(reverse("accounts:account_email"), {"email": "New@Example.com"})
    assert answer.status_code == 200 and "We sent a link to" in answer.content.decode()
    user.refresh_from_db()
    assert user.email == old
    message = mail.outbox[-1]
    assert message.to == ["new@example.com"]
    url = path_of(link_in(message))
    assert "Use new@example.com" in signed_in.get(url).content.decode()
    signed_in.post(url)
    user.refresh_from_db()
    assert user.email == "new@example.com" and user.email_verified
    told = mail.outbox[-1]
    assert told.to == [old] and "changed from" in told.body
    assert AuditEvent.objects.filter(action="user.email_changed").get().metadata == {"from": old}
    # The link does nothing a second time: the account's address moved on.
    again = signed_in.post(url)
    assert again.status_code == 400 and "no longer valid" in again.content.decode()


def test_a_link_opened_while_signed_in_as_someone_else_says_whose_account_it_changes(
    signed_in, user, make_user
):
    """Found in review: Carol, signed in, opening a link sent for Ada's account was asked to
    move "your Reminix account" and then told "Your account's email is now ...", though
    what moved was Ada's and Carol's stayed as it was. The page and the message now say
    the link is for another account, without naming it, and that she is still herself."""
    signed_in.post(reverse("accounts:account_email"), {"email": "new@example.com"})
    url = path_of(link_in(mail.outbox[-1]))
    carol = make_user("carol@example.com")
    as_carol = Client()
    as_carol.force_login(carol)
    page = as_carol.get(url).content.decode()
    assert "Your Reminix account's email will be" not in page
    assert "for another account than the one you are signed in as" in page
    assert user.email not in page  # the account the link is for is not named
    answer = as_carol.post(url, follow=True).content.decode()
    user.refresh_from_db()
    carol.refresh_from_db()
    assert user.email == "new@example.com" and carol.email == "carol@example.com"
    assert "Your account&#x27;s email is now" not in answer
    assert "The account the link was for now uses new@example.com" in answer
    assert "You are still signed in as carol@example.com" in answer


def test_the_old_address_is_told_when_from_where_and_what_still_works(signed_in, user, settings):
    """Found in review: the old address was told "reset your password", with no time,
    place or link; but a reset now goes to the new address, the one someone else may hold,
    and this address's reset form answers that no account uses it."""
    settings.DASHBOARD_URL = "https://dash.example.test"
    old = user.email
    signed_in.post(reverse("accounts:account_email"), {"email": "new@example.com"})
    signed_in.post(path_of(link_in(mail.outbox[-1])), REMOTE_ADDR="198.51.100.23")
    told = mail.outbox[-1]
    assert told.to == [old]
    assert re.search(r"\d{2}:\d{2} UTC", told.body) and "198.51.100.23" in told.body
    assert "https://dash.example.test/account/login/\n" in told.body
    assert "reset your password" not in told.body.lower()


def test_a_taken_address_gets_the_same_answer_and_nothing_changes(signed_in, user, make_user):
    other = make_user("taken@example.com")
    answer = signed_in.post(reverse("accounts:account_email"), {"email": other.email})
    assert answer.status_code == 200 and "We sent a link to" in answer.content.decode()
    assert mail.outbox[-1].to == [other.email] and "already has one" in mail.outbox[-1].body
    user.refresh_from_db()
    assert user.email != other.email


def test_odd_addresses_are_refused_beside_the_field(signed_in):
    for odd in ("not-an-email", "a\x00@b.c", "x" * 300 + "@example.com", "a@b.c\nBcc: x@y.z"):
        answer = signed_in.post(reverse("accounts:account_email"), {"email": odd})
        assert answer.status_code == 422, odd
        assert 'id="id_email_error"' in answer.content.decode()


def test_sending_the_link_again_is_limited(client, db):
    sign_up(client, "fresh@example.com")
    user = User.objects.get(email="fresh@example.com")
    client.force_login(user)
    before = len(mail.outbox)
    for back in ("//evil.example", "/\\evil.example", "https://evil.example/", "/x\x00", "/"):
        answer = client.post(reverse("accounts:email_verify_resend"), {"back": back})
        assert answer["Location"] in ("/", reverse("home")), back  # never off this site
    assert len(mail.outbox) - before == 3


def test_accepting_an_invitation_from_its_link_confirms_the_address(
    client, user, project, django_capture_on_commit_callbacks
):
    from accounts.invitations import invitation_send

    sign_up(client, "kai@example.com")
    kai = User.objects.get(email="kai@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        invitation_send(project=project, email="kai@example.com", role="member", by=user)
    link = [m for m in mail.outbox if m.to == ["kai@example.com"] and "/invitations/" in m.body]
    path = re.search(r"/invitations/reminix_inv_\w+/", link[-1].body).group(0)
    client.force_login(kai)
    assert client.post(path).status_code == 302
    kai.refresh_from_db()
    assert kai.email_verified


def test_a_password_change_ends_a_pending_email_change_link(signed_in, user, client):
    """Whoever knew the old password can ask to move the account to their address: the
    owner's answer, a new password, must end that link too, or it hands them the account."""
    old = user.email
    signed_in.post(reverse("accounts:account_email"), {"email": "thief@example.net"})
    url = path_of(link_in(mail.outbox[-1]))
    user.set_password("a new long passphrase 7")
    user.save(update_fields=["password"])
    refused = client.post(url)
    assert refused.status_code == 400 and "password changed" in refused.content.decode()
    user.refresh_from_db()
    assert user.email == old


def test_asking_for_another_address_ends_the_link_sent_to_the_one_before(signed_in, user, client):
    """A mistyped address (a typo domain's catch-all reads every mail sent to it) is put
    right by asking again for the right one: the first link must then stop, or whoever
    reads the mistyped mailbox can still move the account there, and reset its password."""
    old = user.email
    signed_in.post(reverse("accounts:account_email"), {"email": "ada@gmial.com"})
    mistyped = path_of(link_in(mail.outbox[-1]))
    signed_in.post(reverse("accounts:account_email"), {"email": "ada@gmail.com"})
    meant = path_of(link_in(mail.outbox[-1]))

    refused = client.post(mistyped)
    assert refused.status_code == 400 and "a newer one" in refused.content.decode()
    user.refresh_from_db()
    assert user.email == old
    assert client.post(meant).status_code == 302
    user.refresh_from_db()
    assert user.email == "ada@gmail.com"


def test_a_sign_up_link_sent_before_a_password_reset_must_be_asked_for_again(client, db):
    sign_up(client, "new@example.com")
    url = path_of(link_in(mail.outbox[-1]))
    user = User.objects.get(email="new@example.com")
    user.set_password("a new long passphrase 7")
    user.save(update_fields=["password"])
    assert client.post(url).status_code == 400
    user.refresh_from_db()
    assert not user.email_verified


def test_a_link_from_before_links_carried_the_password_mark_has_expired(client, user):
    """Links sent by the release before carry no mark: refused, without blaming a password
    change that never happened, and nothing changes."""
    old = signing.dumps({"u": user.pk, "to": "moved@example.com", "was": user.email}, salt=_SALT)
    refused = client.post(reverse("accounts:email_verify", args=[old]))
    page = refused.content.decode()
    assert refused.status_code == 400 and "This link has expired" in page
    assert "password changed" not in page
    user.refresh_from_db()
    assert user.email != "moved@example.com"


# Django's EmailField takes any letters after the @, but mail is sent to the domain in its
# IDNA form: these have none (a direction override, an ideographic full stop, a label of
# 60 "é" that is longer than 63 characters encoded). Accepted, the account could never be
# verified and an invitation to one was never sent, though the owner was told it was.
UNMAILABLE = ["a@b.c\u202e", "a@b.\u3002com", "a@" + "é" * 60 + ".com"]


def test_sign_up_refuses_an_address_no_mail_can_reach_beside_the_field(client, db):
    for odd in UNMAILABLE:
        html = sign_up(client, odd).content.decode()
        assert 'id="id_email_error"' in html and "cannot be sent" in html
    assert not User.objects.exists()


def test_an_address_no_mail_can_reach_is_refused_as_a_new_address_or_an_invitation(
    signed_in, project
):
    from accounts.models import Invitation

    for odd in UNMAILABLE:
        answer = signed_in.post(reverse("accounts:account_email"), {"email": odd})
        assert answer.status_code == 422, odd
        assert "cannot be sent" in answer.content.decode()
        invite = reverse("accounts:project_invitation_send", args=[project.slug])
        answer = signed_in.post(invite, {"email": odd, "role": "member"})
        assert answer.status_code == 422, odd
        assert "cannot be sent" in answer.content.decode()
    assert not Invitation.objects.exists()


def test_an_international_domain_is_still_welcome(client, db):
    assert sign_up(client, "ada@exämple.com").status_code == 200
    assert mail.outbox[-1].to == ["ada@exämple.com"]


def test_address_changes_from_many_accounts_mail_one_inbox_three_times_an_hour(make_user, user):
    """Each account may ask for three links an hour, to any address: accounts are free to
    make, so moving many of them to one stranger's address (or spellings of it) filled that
    inbox with links, or with word that someone tried to take its address. The inbox is
    counted as sign-up counts it, and past three an hour the page reads the same."""
    from django.test import Client

    local, domain = user.email.split("@")
    targets = [user.email, f"{local}+a@{domain}", "stranger@example.org", "stranger+b@example.org"]
    for n in range(6):
        asker = Client()
        asker.force_login(make_user(email=f"asker{n}@example.net"))
        for target in targets:
            answer = asker.post(reverse("accounts:account_email"), {"email": target})
            assert answer.status_code == 200 and "We sent a link to" in answer.content.decode()
    reached = [message.to[0].replace("+a", "").replace("+b", "") for message in mail.outbox]
    assert sorted(reached) == sorted([user.email] * 3 + ["stranger@example.org"] * 3)


def test_the_page_that_refuses_an_unconfirmed_change_names_it_not_only_keys(client, db):
    """The refusal read "Creating keys and tokens, and inviting people, wait…" to someone
    who had saved alert rules or email preferences, and the banner above every page said
    confirming was "to create keys and tokens": neither said why a settings form failed."""
    sign_up(client, "new@example.com")
    user = User.objects.get(email="new@example.com")
    client.post(reverse("accounts:login"), {"username": user.email, "password": PASSWORD})
    project = user.memberships.get().project
    for url in (
        reverse("alerts:alert_rules", args=[project.slug]),
        reverse("notifications:preferences"),
    ):
        for headers in ({}, HTMX):
            html = client.post(url, {}, headers=headers).content.decode()
            assert "changing security settings (alert rules, alert emails" in html, url
    banner = client.get(reverse("notifications:preferences")).content.decode()
    assert "to create keys and tokens, invite people or change security settings" in banner
