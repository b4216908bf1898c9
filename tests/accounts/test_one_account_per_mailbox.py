"""One mailbox, one account. Sign-up, the address change and invitations took
`x@ｅｘａｍｐｌｅ.com`, `ada@xn--exmple-cua.com` or `"x"@example.com` beside the account of
x@example.com (or ada@exämple.com): spellings Django's mail delivers to the same mailbox.
Addresses are now kept in one spelling (core.mail.delivery_address), quoted local parts are
refused, and a variant reads exactly as the address itself does: the same page, the same
mail to the owner, no word on the page of whether an account exists."""

from __future__ import annotations

import importlib
import re

import pytest
from django.apps import apps
from django.core import mail
from django.test import Client
from django.urls import reverse

from accounts.invitations import invitation_send
from accounts.models import Invitation, Membership, User
from core.mail import delivery_address
from tests.conftest import PASSWORD

SIGNUP = reverse("accounts:signup")
RESET = reverse("accounts:password_reset")
LOGIN = reverse("accounts:login")
RESET_LINK = re.compile(r"/account/password/reset/[^/\s]+/[^/\s]+/")


def wide(text: str) -> str:
    """`text` in full-width letters, as some keyboards type them."""
    return "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in text)


# Spellings of ada@example.com's mailbox that Django's mail delivers there.
VARIANTS = [
    "ada@EXAMPLE.COM",
    f"ada@{wide('example')}.com",
    "ada@exam\u00adple.com",  # a soft hyphen, which IDNA drops
    "ada@exa\u200bmple.com",  # a zero-width space, which IDNA drops
    "  Ada@Example.com  ",
]


def sign_up(client: Client, email: str):
    return client.post(
        SIGNUP, {"email": email, "name": "New", "password1": PASSWORD, "password2": PASSWORD}
    )


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        (f"grace@{wide('example')}.com", "grace@example.com"),
        ("Grace@Example.COM", "grace@example.com"),
        ("grace@xn--exmple-cua.com", "grace@exämple.com"),
        ("grace@EXÄMPLE.com", "grace@exämple.com"),
        ("grace@straße.de", "grace@strasse.de"),
        ("grace@exa²mple.com", "grace@exa2mple.com"),
    ],
)
def test_a_new_account_keeps_its_address_in_one_spelling(client, db, typed, kept):
    assert sign_up(client, typed).status_code == 200
    assert list(User.objects.values_list("email", flat=True)) == [kept]
    assert mail.outbox[-1].to == [kept]


@pytest.mark.parametrize("variant", VARIANTS)
def test_signing_up_with_a_spelling_of_a_taken_address_reads_as_the_address_itself(
    client, user, variant
):
    exact = sign_up(client, user.email)
    spelled = sign_up(client, variant)
    assert exact.status_code == spelled.status_code == 200
    assert "Check your inbox" in spelled.content.decode()
    assert 'id="id_email_error"' not in spelled.content.decode()
    assert User.objects.count() == 1
    # The owner is told both times, as for the address itself; no link to a new account.
    assert [m.to for m in mail.outbox] == [[user.email], [user.email]]
    assert mail.outbox[0].subject == mail.outbox[1].subject
    assert "/account/verify/" not in mail.outbox[1].body


def test_a_unicode_domain_and_its_idna_form_are_one_account(client, db):
    assert sign_up(client, "ada@exämple.com").status_code == 200
    assert sign_up(client, "ada@xn--exmple-cua.com").status_code == 200
    assert list(User.objects.values_list("email", flat=True)) == ["ada@exämple.com"]


@pytest.mark.parametrize("quoted", ['"ada"@example.com', '"new"@example.com', '"a\\b"@x.com'])
def test_a_quoted_local_part_is_refused_beside_the_field_whoever_has_the_address(
    client, user, quoted
):
    """The same words for a taken address and a free one: nothing is told."""
    response = sign_up(client, quoted)
    assert response.status_code == 200
    assert "without quotation marks" in response.context["form"].errors["email"][0]
    assert User.objects.count() == 1 and not mail.outbox


@pytest.mark.parametrize("variant", [*VARIANTS, '"ada"@example.com'])
def test_signing_in_takes_any_spelling_of_the_address(client, user, variant):
    answer = client.post(LOGIN, {"username": variant, "password": PASSWORD})
    assert answer.status_code == 302
    assert client.session["_auth_user_id"] == str(user.pk)


@pytest.mark.parametrize("variant", [*VARIANTS, '"ada"@example.com', '"ada"@EXAMPLE.com'])
def test_a_reset_asked_for_a_spelling_reaches_the_account(client, user, variant):
    assert client.post(RESET, {"email": variant}).status_code == 302
    [message] = mail.outbox
    assert message.to == [user.email]
    assert RESET_LINK.search(message.body) and "no Reminix account" not in message.body


def test_moving_to_a_spelling_of_another_account_reads_as_the_address_itself(
    client, user, make_user
):
    other = make_user(email="grace@example.com")
    client.force_login(other)
    for typed in ("ada@example.com", f"ada@{wide('example')}.com"):
        answer = client.post(reverse("accounts:account_email"), {"email": typed})
        assert answer.status_code == 200 and "We sent a link to" in answer.content.decode()
    # Both told the owner, as for the address itself; neither sent a link to move.
    assert [m.to for m in mail.outbox] == [[user.email], [user.email]]
    assert all("/account/verify/" not in m.body for m in mail.outbox)
    assert User.objects.get(pk=other.pk).email == "grace@example.com"


def test_moving_to_a_spelling_of_ones_own_address_is_said_beside_the_field(signed_in, user):
    for typed in (f"ada@{wide('example')}.com", "ADA@example.com"):
        answer = signed_in.post(reverse("accounts:account_email"), {"email": typed})
        assert answer.status_code == 422
        assert answer.context["form"].errors["email"] == ["That is your address already."]


def test_a_new_address_is_kept_in_one_spelling(signed_in, user):
    signed_in.post(reverse("accounts:account_email"), {"email": f"ada@{wide('example')}.org"})
    [message] = mail.outbox
    assert message.to == ["ada@example.org"]
    link = re.search(r"/account/verify/\S+/", message.body).group(0)
    signed_in.post(link)
    assert User.objects.get(pk=user.pk).email == "ada@example.org"


def test_an_invitation_of_a_members_spelling_is_refused_as_the_address_is(
    signed_in, project, make_user
):
    bob = make_user(email="bob@example.com")
    Membership.objects.create(project=project, user=bob)
    url = reverse("accounts:project_invitation_send", args=[project.slug])
    for typed in ("bob@EXAMPLE.com", f"bob@{wide('example')}.com", "bob@exam\u00adple.com"):
        answer = signed_in.post(url, {"email": typed, "role": "member"})
        assert answer.status_code == 422
        assert "already a member" in answer.context["form"].errors["email"][0]
    answer = signed_in.post(url, {"email": '"bob"@example.com', "role": "member"})
    assert "without quotation marks" in answer.context["form"].errors["email"][0]
    assert not Invitation.objects.exists()


def test_an_invitation_to_a_spelling_is_kept_as_the_account_is_and_can_be_accepted(
    client, signed_in, project, user, make_user, django_capture_on_commit_callbacks
):
    url = reverse("accounts:project_invitation_send", args=[project.slug])
    with django_capture_on_commit_callbacks(execute=True):
        answer = signed_in.post(url, {"email": f"Bob@{wide('example')}.com", "role": "member"})
    assert answer.status_code == 302
    assert Invitation.objects.get().email == "bob@example.com"
    [message] = mail.outbox
    assert message.to == ["bob@example.com"]
    token = re.search(r"/invitations/(reminix_inv_\w+)/", message.body).group(1)
    bob = make_user(email="bob@example.com")
    client.force_login(bob)
    assert client.post(reverse("accounts:invitation_accept", args=[token])).status_code == 302
    assert Membership.objects.filter(project=project, user=bob).exists()


def test_the_invitation_service_keeps_one_spelling_for_any_caller(project, user):
    invitation = invitation_send(
        project=project, email=f" Cy@{wide('example')}.com ", role="member", by=user
    )
    assert invitation.email == "cy@example.com"


def test_accounts_made_by_any_path_keep_one_spelling(db):
    made = User.objects.create_user(f"Dee@{wide('example')}.com", PASSWORD)
    assert made.email == "dee@example.com"


# What an attacker types: control characters that would end a mail header or split a
# log line, text that reverses itself, characters that show nothing, 10,000 characters.
HOSTILE = [
    "ada@example.com\x00",
    "a\x00da@example.com",
    "ada@example.com\nBcc: eve@example.com",
    "ada\r\n@example.com",
    '"ada\\\n"@example.com',
    '"a\x01"@example.com',
    "ada@exa\u202emple.com",
    "ada@example.com\u2066",
    "ad\u200ba@example.com",
    "\u212a@example.com",  # the Kelvin sign: Django's EmailField takes it, mail does not
    "\u017f@example.com",  # the long s
    "ada²@example.com",
    "a" * 10_000 + "@example.com",
    "ada@" + "e" * 10_000 + ".com",
    "ada@" + "é" * 250 + ".com",
    "ada@" + "ß" * 120 + "." + "ß" * 120 + ".de",
    "\ud800@example.com",
    "ada@example.com" + "\u0301" * 500,
]


def _post_raw(client: Client, url: str, fields: dict[str, str], email_field: str):
    """A form post whose address may hold a lone surrogate: sent as the bytes a browser
    would (invalid UTF-8), which the test client cannot encode from a str."""
    from urllib.parse import quote

    body = "&".join(
        f"{name}={quote(value.encode('utf-8', 'surrogatepass'))}" for name, value in fields.items()
    )
    return client.post(url, body, content_type="application/x-www-form-urlencoded")


@pytest.mark.parametrize("typed", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_addresses_are_refused_or_kept_plain_never_a_500(
    client, user, project, make_user, typed
):
    answers = [
        _post_raw(
            client,
            SIGNUP,
            {"email": typed, "password1": PASSWORD, "password2": PASSWORD},
            "email",
        ),
        _post_raw(client, RESET, {"email": typed}, "email"),
        _post_raw(client, LOGIN, {"username": typed, "password": PASSWORD}, "username"),
    ]
    client.force_login(user)
    answers.append(_post_raw(client, reverse("accounts:account_email"), {"email": typed}, "email"))
    answers.append(
        _post_raw(
            client,
            reverse("accounts:project_invitation_send", args=[project.slug]),
            {"email": typed, "role": "member"},
            "email",
        )
    )
    assert all(answer.status_code < 500 for answer in answers), [a.status_code for a in answers]
    kept = [
        *User.objects.values_list("email", flat=True),
        *Invitation.objects.values_list("email", flat=True),
    ]
    for email in kept:
        assert email == delivery_address(email) and len(email) <= 254
        local = email.rpartition("@")[0]
        assert local.isascii() and local.isprintable() and '"' not in local
        assert not re.search(r"[\x00-\x1f\x7f\u200b\u202a-\u202e\u2066-\u2069]", email)
    for message in mail.outbox:
        assert "\n" not in message.to[0] and "\r" not in message.to[0]


def test_addresses_kept_before_move_to_one_spelling_unless_another_account_has_it(db):
    """The data migration: old spellings become the one spelling; when another account
    has it already (two accounts for one mailbox, made before) the old one stays, and
    still signs in as it is kept."""
    migration = importlib.import_module("accounts.migrations.0016_addresses_in_one_spelling")
    kept = User.objects.create_user("ada@example.com", PASSWORD)
    lone = User.objects.create_user("bea@example.org", PASSWORD)
    twin = User.objects.create_user("placeholder@example.net", PASSWORD)
    odd = User.objects.create_user("odd@example.net", PASSWORD)
    User.objects.filter(pk=lone.pk).update(email=f"bea@{wide('example')}.org")
    User.objects.filter(pk=twin.pk).update(email="ada@exam\u00adple.com")
    User.objects.filter(pk=odd.pk).update(email='"a b"@example.net')
    migration.one_spelling(apps, None)
    emails = dict(User.objects.values_list("pk", "email"))
    assert emails[kept.pk] == "ada@example.com"
    assert emails[lone.pk] == "bea@example.org"
    assert emails[twin.pk] == "ada@exam\u00adple.com"
    assert emails[odd.pk] == '"a b"@example.net'
    browser = Client()
    answer = browser.post(LOGIN, {"username": "ada@exam\u00adple.com", "password": PASSWORD})
    assert answer.status_code == 302 and browser.session["_auth_user_id"] == str(twin.pk)


@pytest.mark.parametrize(
    "typed",
    [
        '"mallory@evil.example(x"@example.com',
        '"mallory@evil.example\\ (x"@example.com',
        '"<mallory@evil.example>"@example.com',
    ],
)
def test_a_quoted_local_part_that_needs_its_quotes_keeps_them_and_its_mailbox(client, db, typed):
    """Found in review: unquoting every quoted local part made `"m@evil(x"@example.com`,
    a mailbox at example.com, into `m@evil(x@example.com`, which Django's mail sends to
    m@evil: the reset form mailed that other inbox, a count of its own each time."""
    assert delivery_address(typed) == typed.lower()
    assert client.post(RESET, {"email": typed}).status_code == 302
    for message in mail.outbox:
        # The recipient as the message Django sends reads it.
        [to] = message.message()["To"].addresses
        assert to.domain == "example.com", message.to


@pytest.mark.parametrize("typed", ["=?utf-8?q?bob?=@example.com", "=?utf-8?q?x?=.y@example.com"])
def test_a_local_part_written_as_an_encoded_word_is_refused_beside_the_field(
    client, signed_in, project, typed
):
    """Found in review: Django's EmailField takes `=?utf-8?q?bob?=@example.com` (every
    character is allowed there), but Django's SMTP backend refuses it at every send (the
    mail library reads an encoded word; its To header even says bob@example.com): such an
    account could never be verified, an invitation to it never arrived, and each alert
    email owed to it was retried every minute."""
    invited = signed_in.post(
        reverse("accounts:project_invitation_send", args=[project.slug]),
        {"email": typed, "role": "member"},
    )
    client.logout()
    signed_up = sign_up(client, typed)
    for response in (invited, signed_up):
        assert response.status_code in (200, 422)
        assert 'id="id_email_error"' in response.content.decode()
    assert not User.objects.filter(email__contains="=?").exists()
    assert not Invitation.objects.exists() and not mail.outbox
