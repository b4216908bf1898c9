"""Invitations replace "add an existing user": nobody joins a project without accepting,
and inviting says nothing about which emails have accounts."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.invitations import TOKEN_PREFIX, invitation_for_token
from accounts.models import Invitation, Membership, User
from accounts.services import project_rename
from audit.models import AuditEvent
from tests.accounts.test_projects import normalised
from tests.conftest import PASSWORD


def invite(client, project, email="newcomer@example.com", role="member", **kwargs):
    return client.post(
        reverse("accounts:project_invitation_send", args=[project.slug]),
        {"email": email, "role": role},
        **kwargs,
    )


def link_in(message) -> str:
    [url] = re.findall(r"https?://\S+/invitations/(reminix_inv_\w+)/", message.body)
    return reverse("accounts:invitation_accept", args=[url])


@pytest.fixture
def sent(signed_in, project, make_user, django_capture_on_commit_callbacks):
    """An invitation of bob@example.com (who has an account) as a member, and its link."""
    make_user(email="bob@example.com", name="Bob")
    with django_capture_on_commit_callbacks(execute=True):
        assert invite(signed_in, project, "Bob@Example.com").status_code == 302
    return link_in(mail.outbox[-1])


def test_inviting_sends_a_link_and_adds_nobody_yet(sent, project):
    [message] = mail.outbox
    assert message.to == ["bob@example.com"]
    assert "Ada Lovelace invited you to" in message.subject
    assert project.name in message.body and "as a member" in message.body
    assert not Membership.objects.filter(project=project, user__email="bob@example.com").exists()
    invitation = Invitation.objects.get(project=project)
    assert invitation.email == "bob@example.com" and invitation.is_pending
    # Only the keyed hash is kept: the token itself is nowhere in the database.
    token = sent.rstrip("/").rsplit("/", 1)[1]
    assert token.startswith(TOKEN_PREFIX) and token not in invitation.token_hash
    assert AuditEvent.objects.filter(action="membership.invitation_sent", project=project).exists()


def test_inviting_answers_the_same_whether_or_not_the_email_has_an_account(
    signed_in, project, make_user
):
    make_user(email="known@example.com")
    answers = []
    for email in ("known@example.com", "ghost@example.com"):
        response = invite(signed_in, project, email, follow=True)
        assert response.redirect_chain[-1][1] == 302
        [message] = [str(m) for m in response.context["messages"]]
        answers.append(message.replace(email, "EMAIL"))
        assert Invitation.objects.filter(email=email).exists()
    assert answers[0] == answers[1]


def test_a_form_that_cannot_act_does_not_reveal_whether_an_email_has_an_account(
    signed_in, project, make_user
):
    make_user(email="known@example.com")
    pages = []
    for email in ("known@example.com", "ghost@example.com"):
        response = invite(signed_in, project, email, role="emperor")
        assert response.status_code == 422
        html = response.content.decode()
        assert 'id="id_role_error"' in html and 'id="id_email_error"' not in html
        pages.append(html.replace(email, "EMAIL"))
    assert normalised(pages[0]) == normalised(pages[1])
    assert not Invitation.objects.exists()


def test_a_member_already_in_the_project_is_not_invited(signed_in, project, user):
    response = invite(signed_in, project, user.email.upper())
    assert response.status_code == 422
    assert "already a member" in response.content.decode()


def test_the_invitee_accepts_signed_in_with_the_invited_email(client, sent, project):
    bob = User.objects.get(email="bob@example.com")
    client.force_login(bob)
    page = client.get(sent)
    assert page.status_code == 200 and "Accept and join" in page.content.decode()
    assert not Membership.objects.filter(project=project, user=bob).exists()  # GET never joins
    response = client.post(sent)
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=bob).role == "member"
    assert AuditEvent.objects.filter(action="membership.invitation_accepted", actor=bob).exists()
    # The link works once.
    again = client.post(sent)
    assert again.status_code == 410 and "accepted already" in again.content.decode()


def test_someone_else_holding_the_link_cannot_accept_it(client, sent, project, make_user):
    mallory = make_user(email="mallory@example.com")
    client.force_login(mallory)
    response = client.post(sent)
    assert response.status_code == 409
    assert "sent to bob@example.com" in response.content.decode()
    assert not Membership.objects.filter(project=project, user=mallory).exists()
    assert Invitation.objects.get().is_pending


def test_another_site_cannot_make_the_invitee_accept(sent, project):
    """A form on another site, posted by the invitee's signed-in browser, carries no CSRF
    token: nobody is joined to a project without their own click."""
    bob = User.objects.get(email="bob@example.com")
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(bob)
    assert browser.post(sent).status_code == 403
    assert not Membership.objects.filter(project=project, user=bob).exists()
    assert Invitation.objects.get().is_pending


def test_signed_out_the_link_offers_sign_in_and_sign_up_that_come_back(client, sent):
    client.logout()
    html = client.get(sent).content.decode()
    assert f"?next={sent}" in html.replace("%2F", "/")
    assert client.post(sent).status_code == 302  # to sign in, nobody joins


def test_signing_in_from_the_link_comes_back_to_it(client, sent):
    """The sign-in page keeps no token of a `next` (a hand-made link's), except an
    invitation's link, whose path is its token: that is where sign-in comes back to."""
    client.logout()
    login = reverse("accounts:login")
    assert f'name="next" value="{sent}"' in client.get(login, {"next": sent}).content.decode()
    signed_in = client.post(
        login, {"username": "bob@example.com", "password": PASSWORD, "next": sent}
    )
    assert signed_in.status_code == 302 and signed_in["Location"] == sent


def test_a_newcomer_signs_up_from_the_link_and_then_accepts(
    client, signed_in, project, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(signed_in, project, "carol@example.com", role="owner")
    link = link_in(mail.outbox[-1])
    client.logout()
    signup = client.post(
        reverse("accounts:signup") + f"?next={link}",
        {
            "email": "carol@example.com",
            "name": "Carol",
            "password1": "a long enough passphrase 42",
            "password2": "a long enough passphrase 42",
        },
    )
    assert signup.status_code == 302 and signup["Location"] == link
    client.post(link)
    assert Membership.objects.get(project=project, user__email="carol@example.com").role == "owner"


def test_sign_up_never_sends_people_to_another_site(client):
    for wanted in ("https://evil.example/", "//evil.example/", "/\x00x"):
        page = client.get(reverse("accounts:signup"), {"next": wanted}).content.decode()
        assert "evil.example" not in page and 'name="next"' not in page


def test_an_expired_or_withdrawn_invitation_cannot_be_accepted(client, sent, project, user):
    invitation = Invitation.objects.get()
    invitation.expires_at = timezone.now() - timedelta(seconds=1)
    invitation.save()
    bob = User.objects.get(email="bob@example.com")
    client.force_login(bob)
    assert client.post(sent).status_code == 410
    invitation.expires_at = timezone.now() + timedelta(days=1)
    invitation.save()
    client.force_login(user)  # the owner withdraws it
    client.post(reverse("accounts:project_invitation_revoke", args=[project.slug, invitation.pk]))
    client.force_login(bob)
    assert client.post(sent).status_code == 410
    assert not Membership.objects.filter(project=project, user=bob).exists()
    assert AuditEvent.objects.filter(action="membership.invitation_revoked").exists()


def test_inviting_again_replaces_the_pending_link(
    signed_in, project, sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        invite(signed_in, project, "bob@example.com", role="owner")
    assert Invitation.objects.pending().filter(email="bob@example.com").count() == 1
    assert invitation_for_token(sent.rstrip("/").rsplit("/", 1)[1]).revoked_at is not None


def test_pending_invitations_are_listed_for_owners_only(
    signed_in, client, sent, project, make_user
):
    members = reverse("accounts:project_members", args=[project.slug])
    assert "bob@example.com" in signed_in.get(members).content.decode()
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    assert "bob@example.com" not in client.get(members).content.decode()


@pytest.mark.parametrize("token", ["x", TOKEN_PREFIX + "A" * 40, TOKEN_PREFIX + "²" * 40])
def test_a_made_up_link_is_a_404(client, db, token):
    assert client.get(reverse("accounts:invitation_accept", args=[token])).status_code == 404


def test_an_invitation_of_another_project_cannot_be_withdrawn_here(
    signed_in, project, make_user, make_project
):
    other_owner = make_user(email="other@example.com")
    other = Membership.objects.get(user=other_owner).project
    invitation = Invitation.objects.create(
        project=other,
        email="x@example.com",
        role="member",
        token_hash="0" * 64,
        expires_at=timezone.now() + timedelta(days=7),
    )
    response = signed_in.post(
        reverse("accounts:project_invitation_revoke", args=[project.slug, invitation.pk])
    )
    assert response.status_code == 404
    assert Invitation.objects.get(pk=invitation.pk).is_pending


def test_withdrawing_an_invitation_accepted_meanwhile_says_they_joined(signed_in, sent, project):
    """The owner's members page still offered Withdraw when Bob accepted: the click ends
    nothing, and "withdrawn" would leave the owner sure that Bob cannot get in."""
    invitation = Invitation.objects.get()
    bob = User.objects.get(email="bob@example.com")
    as_bob = Client()
    as_bob.force_login(bob)
    assert as_bob.post(sent).status_code == 302
    url = reverse("accounts:project_invitation_revoke", args=[project.slug, invitation.pk])
    page = signed_in.post(url, follow=True).content.decode()
    assert "was withdrawn" not in page
    assert "bob@example.com accepted the invitation before it could be withdrawn" in page
    assert Membership.objects.filter(project=project, user=bob).exists()
    assert not AuditEvent.objects.filter(action="membership.invitation_revoked").exists()


def test_withdrawing_an_invitation_twice_says_it_had_been_withdrawn(signed_in, sent, project):
    """Two owners, or two tabs: the second click ends nothing and says so."""
    invitation = Invitation.objects.get()
    url = reverse("accounts:project_invitation_revoke", args=[project.slug, invitation.pk])
    assert "was withdrawn" in signed_in.post(url, follow=True).content.decode()
    page = signed_in.post(url, follow=True).content.decode()
    assert "The invitation to bob@example.com had already been withdrawn." in page
    assert AuditEvent.objects.filter(action="membership.invitation_revoked").count() == 1


def test_a_member_cannot_invite(client, project, make_user):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    assert invite(client, project, "friend@example.com", role="owner").status_code == 403
    assert not Invitation.objects.exists()


def test_inviting_is_throttled_per_owner_and_per_address(signed_in, project, monkeypatch):
    from accounts.views import members as member_views

    monkeypatch.setattr(member_views, "INVITATIONS_PER_HOUR", 3)
    statuses = [invite(signed_in, project, f"p{n}@example.com").status_code for n in range(5)]
    assert statuses == [302, 302, 302, 422, 422]
    monkeypatch.setattr(member_views, "INVITATIONS_PER_HOUR", 100)
    monkeypatch.setattr(member_views, "INVITATIONS_PER_EMAIL_PER_DAY", 2)
    statuses = [invite(signed_in, project, "same@example.com").status_code for _ in range(3)]
    assert statuses == [302, 302, 422]


def test_the_per_address_limit_counts_the_inbox_not_the_spelling(signed_in, project, monkeypatch):
    """A `+tag`, capitals, dots at Gmail or the domain in full-width letters reach the same
    inbox: each spelling is not a count of its own."""
    from accounts.views import members as member_views

    monkeypatch.setattr(member_views, "INVITATIONS_PER_EMAIL_PER_DAY", 3)
    spellings = [
        "same@example.com",
        "same+1@example.com",
        "SAME+2@Example.com",
        "same@ｅｘａｍｐｌｅ.com",
        "s.a.m.e+3@example.com",
    ]
    statuses = [invite(signed_in, project, email).status_code for email in spellings]
    assert statuses == [302, 302, 302, 422, 302]
    assert invite(signed_in, project, "sa.me@gmail.com").status_code == 302
    assert invite(signed_in, project, "same+x@googlemail.com").status_code == 302
    assert invite(signed_in, project, "s.ame@gmail.com").status_code == 302
    answer = invite(signed_in, project, "SAME@gmail.com")
    assert answer.status_code == 422
    assert "invited many times today" in str(answer.context["form"].errors["email"])


def test_a_project_name_with_a_line_break_stays_one_mail_header(
    signed_in, project, django_capture_on_commit_callbacks
):
    Project = type(project)
    Project.objects.filter(pk=project.pk).update(name="Evil\nBcc: victim@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        assert invite(signed_in, project, "x@example.com").status_code == 302
    [message] = mail.outbox
    assert "\n" not in message.subject and message.to == ["x@example.com"]
    assert not message.bcc


def test_the_link_token_is_redacted_from_logs():
    from core.redact import redact_tokens

    assert redact_tokens("GET /invitations/reminix_inv_abcDEF123/") == (
        "GET /invitations/reminix_inv_[redacted]/"
    )


def test_a_next_that_is_not_a_path_is_ignored_not_a_500(client, signed_in):
    for wanted in ("foo", "²", "a b", "signup"):
        assert signed_in.get(reverse("accounts:signup"), {"next": wanted}).status_code == 302
    client.logout()
    answer = client.post(
        reverse("accounts:signup") + "?next=foo",
        {
            "email": "dee@example.com",
            "name": "Dee",
            "password1": "a long enough passphrase 42",
            "password2": "a long enough passphrase 42",
        },
    )
    # No invitation behind that next: the usual "check your inbox", never a 500.
    assert answer.status_code == 200 and "Check your inbox" in answer.content.decode()


@pytest.mark.parametrize("how", ["removed", "demoted", "handed over"])
def test_an_owner_who_loses_the_project_loses_their_pending_invitations(
    client, project, user, make_user, django_capture_on_commit_callbacks, how
):
    mallory = make_user(email="mallory@example.com")
    mine = Membership.objects.create(project=project, user=mallory, role="owner")
    client.force_login(mallory)
    with django_capture_on_commit_callbacks(execute=True):
        invite(client, project, "mallory-alt@example.com", role="owner")
    link = link_in(mail.outbox[-1])
    client.force_login(user)
    if how == "removed":
        client.post(reverse("accounts:project_member_remove", args=[project.slug, mine.pk]))
    elif how == "demoted":
        client.post(
            reverse("accounts:project_member_role", args=[project.slug, mine.pk]),
            {"role": "member"},
        )
    else:
        client.force_login(mallory)
        other = Membership.objects.get(project=project, user=user)
        client.post(reverse("accounts:project_transfer", args=[project.slug, other.pk]))
    alt = make_user(email="mallory-alt@example.com")
    client.force_login(alt)
    assert client.post(link).status_code == 410
    assert not Membership.objects.filter(project=project, user=alt).exists()


def test_an_invitation_stands_only_while_its_sender_is_an_owner(
    client, sent, project, user, make_user
):
    """Even if the sender lost the role some other way than through these pages."""
    Membership.objects.filter(project=project, user=user).update(role="member")
    client.force_login(User.objects.get(email="bob@example.com"))
    assert client.post(sent).status_code == 409
    assert not Membership.objects.filter(project=project, user__email="bob@example.com").exists()


def test_the_per_address_limit_is_per_project(signed_in, project, make_user, monkeypatch, client):
    from accounts.views import members as member_views

    monkeypatch.setattr(member_views, "INVITATIONS_PER_EMAIL_PER_DAY", 1)
    spammer = make_user(email="spammer@example.com")
    spam_project = Membership.objects.get(user=spammer).project
    client.force_login(spammer)
    assert invite(client, spam_project, "victim@example.com").status_code == 302
    assert invite(client, spam_project, "victim@example.com").status_code == 422
    client.force_login(User.objects.get(email="ada@example.com"))
    assert invite(client, project, "victim@example.com").status_code == 302


def test_a_sign_in_that_fails_from_an_invitation_link_stores_no_token(client, sent):
    from axes.models import AccessAttempt

    client.logout()
    token = sent.rstrip("/").rsplit("/", 1)[1]
    client.post(
        reverse("accounts:login") + f"?next={sent}",
        {"username": "bob@example.com", "password": "wrong", "next": sent},
    )
    attempts = list(AccessAttempt.objects.values_list("get_data", "post_data"))
    assert attempts and all(token not in data for row in attempts for data in row)


def test_an_invitation_whose_email_cannot_be_sent_is_still_made(
    signed_in, project, monkeypatch, django_capture_on_commit_callbacks
):
    from accounts import invitations

    def down(**kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(invitations, "send_mail", down)
    with django_capture_on_commit_callbacks(execute=True):
        assert invite(signed_in, project, "z@example.com").status_code == 302
    assert Invitation.objects.filter(email="z@example.com").exists()


def test_names_cannot_reorder_the_text_of_an_invitation_mail(
    signed_in, project, user, django_capture_on_commit_callbacks
):
    """Anyone can invite any address, so the inviter's name and the project's name reach
    strangers' inboxes. A right-to-left override in them (U+202E) would show the rest of
    the subject line backwards: text we did not write, under our sender."""
    user.name = "Ada \u202eeciovnI \u2066Lovelace\u2069"
    user.save()
    project.name = "Acme\u202b prod \u200f\u202c"
    project.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert invite(signed_in, project, "stranger@example.com").status_code == 302
    [message] = mail.outbox
    for text in (message.subject, message.body):
        assert not re.search("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]", text), text
    assert "Ada eciovnI Lovelace invited you to Acme prod" in message.subject


def test_sign_ups_for_an_invitees_inbox_do_not_stop_them_signing_up_from_the_link(
    client, signed_in, project, django_capture_on_commit_callbacks
):
    """Sign-up mails to one inbox stop at three an hour; signing up from an invitation's
    link for that very address sends none (the link proved the inbox), so a stranger who
    used up the count with `carol+1@`, `carol+2@`, … must not turn it away."""
    from django.test import Client

    with django_capture_on_commit_callbacks(execute=True):
        invite(signed_in, project, "carol@example.com")
    link = link_in(mail.outbox[-1])
    password = "a long enough passphrase 42"
    for n in range(4):
        Client().post(
            reverse("accounts:signup"),
            {"email": f"carol+{n}@example.com", "password1": password, "password2": password},
            REMOTE_ADDR=f"198.51.100.{n}",
        )
    client.logout()
    signup = client.post(
        reverse("accounts:signup") + f"?next={link}",
        {"email": "carol@example.com", "password1": password, "password2": password},
    )
    assert signup.status_code == 302 and signup["Location"] == link


def test_an_invitation_names_the_inviters_address_beside_the_name_they_chose(
    client, signed_in, project, user, django_capture_on_commit_callbacks
):
    """Found in review: the mail and the link's page named the inviter by their display
    name alone, which is whatever they typed: anyone could invite a stranger as "Grace
    Hopper" or "Acme IT Support", under our sender. The address they signed in with (an
    inviter's is verified) now stands beside it, as GitHub's and Slack's invitations do."""
    user.name = "Acme IT Support"
    user.save()
    with django_capture_on_commit_callbacks(execute=True):
        assert invite(signed_in, project, "stranger@example.com").status_code == 302
    [message] = mail.outbox
    assert "Acme IT Support (ada@example.com) invited you to join" in message.body
    client.logout()
    page = client.get(link_in(message)).content.decode()
    assert "Acme IT Support (ada@example.com) invited" in normalised(page)


def test_an_inviters_longest_name_does_not_push_their_address_out_of_the_mail(
    make_user, make_project, django_capture_on_commit_callbacks
):
    from accounts.invitations import invitation_send

    owner = make_user(email="it-support-" + "x" * 50 + "@example.com", name="Acme IT " + "y" * 142)
    project = make_project(owner)
    with django_capture_on_commit_callbacks(execute=True):
        invitation_send(project=project, email="stranger@example.com", role="member", by=owner)
    [message] = mail.outbox
    assert f"{owner.name} ({owner.email}) invited you to join" in message.body


def test_the_sent_message_says_who_joins(signed_in, project):
    """It read "It joins the project once they accept": the project joined nothing."""
    text = invite(signed_in, project, "carol@example.com", follow=True).content.decode()
    assert "Invitation sent to carol@example.com. They join the project once they accept" in text


@pytest.mark.parametrize("how", ["removed", "demoted", "handed over"])
def test_invitations_withdrawn_with_their_senders_role_each_say_so_in_the_audit_log(
    client, project, user, make_user, django_capture_on_commit_callbacks, how
):
    """An invitation that ends because its sender stopped being an owner is in the log as
    withdrawn, by whoever made that change: not gone from the list without a word."""
    mallory = make_user(email="mallory@example.com")
    mine = Membership.objects.create(project=project, user=mallory, role="owner")
    client.force_login(mallory)
    invite(client, project, "mallory-alt@example.com", role="owner")
    invitation = Invitation.objects.get(email="mallory-alt@example.com")
    client.force_login(user)
    actor = user
    if how == "removed":
        client.post(reverse("accounts:project_member_remove", args=[project.slug, mine.pk]))
    elif how == "demoted":
        client.post(
            reverse("accounts:project_member_role", args=[project.slug, mine.pk]),
            {"role": "member"},
        )
    else:
        client.force_login(mallory)
        actor = mallory
        other = Membership.objects.get(project=project, user=user)
        client.post(reverse("accounts:project_transfer", args=[project.slug, other.pk]))
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None
    withdrawn = AuditEvent.objects.get(
        action="membership.invitation_revoked", target_id=str(invitation.pk)
    )
    assert withdrawn.project == project and withdrawn.actor == actor
    assert withdrawn.target_label == "mallory-alt@example.com"
    assert withdrawn.metadata == {"reason": "its sender is no longer an owner"}


def test_an_invitation_replaced_by_a_new_one_says_so_in_the_audit_log(signed_in, project, user):
    invite(signed_in, project, "newcomer@example.com")
    first = Invitation.objects.get(email="newcomer@example.com")
    invite(signed_in, project, "Newcomer@Example.com", role="owner")
    withdrawn = AuditEvent.objects.get(
        action="membership.invitation_revoked", target_id=str(first.pk)
    )
    assert withdrawn.actor == user and withdrawn.target_label == "newcomer@example.com"
    assert withdrawn.metadata == {"reason": "replaced by a new invitation"}


def test_an_invitation_withdrawn_on_the_members_page_is_logged_once_as_the_others_are(
    signed_in, project, user
):
    """The same event as one withdrawn by a change of owners or a new invitation (one
    function writes them all), without a reason: it was the owner's own choice."""
    invite(signed_in, project, "newcomer@example.com")
    invitation = Invitation.objects.get(email="newcomer@example.com")
    url = reverse("accounts:project_invitation_revoke", args=[project.slug, invitation.pk])
    signed_in.post(url)
    signed_in.post(url)  # a second click: it has ended already
    withdrawn = AuditEvent.objects.get(
        action="membership.invitation_revoked", target_id=str(invitation.pk)
    )
    assert withdrawn.project == project and withdrawn.actor == user
    assert withdrawn.target_label == "newcomer@example.com" and withdrawn.metadata == {}
    assert Invitation.objects.get(pk=invitation.pk).revoked_at is not None


@pytest.mark.parametrize("ended", ["accepted", "withdrawn", "expired"])
def test_a_link_that_no_longer_stands_does_not_name_the_project_as_it_is_now(
    client, sent, project, user, ended
):
    """Past its use, a link tells its holder only that: not the project's name, which its
    owners may have changed since (a member who left, or an address invited by mistake,
    would otherwise read every rename in the page's title)."""
    bob = User.objects.get(email="bob@example.com")
    client.force_login(bob)
    if ended == "accepted":
        client.post(sent)
        Membership.objects.filter(project=project, user=bob).delete()  # and left since
    elif ended == "withdrawn":
        Invitation.objects.update(revoked_at=timezone.now())
    else:
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    project_rename(project=project, name="Codename Falcon", by=user)
    page = client.get(sent)
    assert page.status_code == 410
    assert "Codename Falcon" not in page.content.decode()
