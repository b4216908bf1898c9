"""The user's personal access tokens page, expiry reminders, and who sees what."""

import datetime
import io
import re

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership
from accounts.services import membership_remove, project_rename
from apikeys.models import PersonalAccessToken
from apikeys.services import personal_token_create, personal_token_regenerate
from apikeys.tokens import token_hash
from audit.models import AuditEvent

PAT = re.compile(r"reminix_pat_[0-9A-Za-z]{36}")
LIST = reverse("apikeys:personal_token_list")
CREATE = reverse("apikeys:personal_token_create")


def create(client, **fields):
    data = {"name": "Laptop CLI", "access": "full", "expiry": "30", "form_id": "f1", "reach": "all"}
    data.update(fields)
    return client.post(CREATE, data)


def test_a_new_token_is_shown_once_and_only_its_hash_is_kept(signed_in, user):
    response = create(signed_in)
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    token = PAT.search(response.content.decode()).group(0)
    pat = PersonalAccessToken.objects.get(user=user)
    assert pat.token_hash == token_hash(token)
    assert abs((pat.expires_at - timezone.now()).days - 30) <= 1
    assert token not in signed_in.get(LIST).content.decode()
    assert AuditEvent.objects.filter(action="personal_token.created", actor=user).exists()


def test_a_token_can_be_limited_to_some_projects_and_permissions(
    signed_in, user, project, make_project
):
    make_project(owner=user, name="Other")
    create(
        signed_in, access="restricted", permissions=["read"], reach="chosen", projects=[project.pk]
    )
    pat = PersonalAccessToken.objects.get(user=user)
    assert pat.permissions == ["read"]
    assert list(pat.projects.all()) == [project]


def test_a_project_of_someone_else_cannot_be_chosen(signed_in, make_user):
    stranger = make_user(email="stranger@example.com")
    foreign = stranger.memberships.get().project
    response = create(signed_in, reach="chosen", projects=[foreign.pk])
    assert response.status_code == 422
    assert 'id="id_projects_error"' in response.content.decode()
    assert not PersonalAccessToken.objects.exists()


def test_an_expiry_date_more_than_a_year_ahead_is_refused(signed_in):
    day = timezone.now().date() + datetime.timedelta(days=400)
    response = create(signed_in, expiry="date", expires_on=day.isoformat())
    assert response.status_code == 422
    assert "at most 366 days" in response.content.decode()


def test_no_expiry_is_allowed_but_flagged(signed_in, user):
    response = create(signed_in, expiry="never")
    assert response.status_code == 201
    assert PersonalAccessToken.objects.get(user=user).expires_at is None
    assert "no expiry" in signed_in.get(LIST).content.decode()


def test_revoking_asks_first_then_revokes(signed_in, user):
    pat, _ = personal_token_create(user=user, name="Old laptop")
    url = reverse("apikeys:personal_token_revoke", args=[pat.pk])
    assert "Revoke “<bdi>Old laptop</bdi>”?" in signed_in.get(url).content.decode()
    signed_in.post(url)
    pat.refresh_from_db()
    assert pat.revoked_at is not None
    assert AuditEvent.objects.filter(action="personal_token.revoked", actor=user).exists()


def test_someone_elses_token_is_404(client, make_user):
    owner = make_user(email="owner@example.com")
    pat, _ = personal_token_create(user=owner, name="Theirs")
    client.force_login(make_user(email="intruder@example.com"))
    url = reverse("apikeys:personal_token_revoke", args=[pat.pk])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    pat.refresh_from_db()
    assert pat.revoked_at is None
    assert "Theirs" not in client.get(LIST).content.decode()


def test_a_banner_warns_of_a_token_expiring_within_a_week(signed_in, user, project):
    soon, _ = personal_token_create(
        user=user, name="Soon", expires_at=timezone.now() + datetime.timedelta(days=3)
    )
    # Made for a year, now in its last week (a token made for 3 days waits for its last day).
    PersonalAccessToken.objects.filter(pk=soon.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=362)
    )
    personal_token_create(
        user=user, name="Later", expires_at=timezone.now() + datetime.timedelta(days=30)
    )
    html = signed_in.get(reverse("overview:project_overview", args=[project.slug])).content
    assert "Your personal access token “<bdi>Soon</bdi>” expires".encode() in html
    assert b"Later" not in html


def test_a_token_regenerated_for_a_few_days_waits_for_its_last_day(signed_in, user, project):
    old, _ = personal_token_create(user=user, name="Old")
    PersonalAccessToken.objects.filter(pk=old.pk).update(
        created_at=timezone.now() - datetime.timedelta(days=300)
    )
    old.refresh_from_db()
    in_three_days = timezone.now() + datetime.timedelta(days=3)
    personal_token_regenerate(personal_token=old, by=user, expires_at=in_three_days)
    overview = reverse("overview:project_overview", args=[project.slug])
    assert "token “<bdi>Old</bdi>” expires".encode() not in signed_in.get(overview).content
    PersonalAccessToken.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() + datetime.timedelta(hours=20)
    )
    assert "token “<bdi>Old</bdi>” expires".encode() in signed_in.get(overview).content


@pytest.mark.parametrize("days", [3, 7])
def test_the_reminder_email_goes_once_per_token(user, days):
    personal_token_create(
        user=user,
        name="CI deploys",
        expires_at=timezone.now() + datetime.timedelta(days=days, minutes=-1),
    )
    personal_token_create(
        user=user, name="Far", expires_at=timezone.now() + datetime.timedelta(days=20)
    )
    call_command("send_token_expiry_reminders", stdout=io.StringIO())
    call_command("send_token_expiry_reminders", stdout=io.StringIO())
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [user.email]
    assert "CI deploys" in mail.outbox[0].subject
    assert "reminix_pat_" not in mail.outbox[0].body.replace(
        PersonalAccessToken.objects.get(name="CI deploys").hint, ""
    )


def test_the_reminder_links_the_page_where_a_new_token_is_made(user, client, settings):
    """Found in review: the reminder said to create a new token "under Personal access
    tokens" without a link, and was the one email whose subject did not start [Reminix],
    the mark a person's mail rules file them by."""
    settings.DASHBOARD_URL = "https://dash.example.test"
    personal_token_create(
        user=user, name="CI", expires_at=timezone.now() + datetime.timedelta(days=3)
    )
    mail.outbox.clear()  # its "created" notice
    call_command("send_token_expiry_reminders", stdout=io.StringIO())
    (email,) = mail.outbox
    assert email.subject.startswith("[Reminix] ")
    assert f"https://dash.example.test{LIST}\n" in email.body
    client.force_login(user)
    assert b"CI" in client.get(LIST).content


def test_a_newline_in_a_token_name_neither_breaks_nor_stops_the_reminders(
    user, make_user, monkeypatch
):
    """Names saved before names had to be one line: the reminder's subject is made one
    line; and one reminder the mail server refuses does not stop the others (it is tried
    again on the next run)."""
    from apikeys import reminders

    soon = timezone.now() + datetime.timedelta(days=3)
    odd, _ = personal_token_create(user=user, name="ok", expires_at=soon)
    PersonalAccessToken.objects.filter(pk=odd.pk).update(name="Eve\nBcc: x@example.com")
    other = make_user(email="other@example.com")
    personal_token_create(user=other, name="Refused", expires_at=soon)
    # Someone else's: a refused address is not tried again in the run (whatever the order).
    personal_token_create(user=make_user(email="third@example.com"), name="Fine", expires_at=soon)
    real_send = reminders.send_mail

    def refuses_one(**kwargs):
        if "Refused" in kwargs["subject"]:
            raise ConnectionRefusedError("the mail server refused")
        return real_send(**kwargs)

    monkeypatch.setattr(reminders, "send_mail", refuses_one)
    call_command("send_token_expiry_reminders", stdout=io.StringIO())
    subjects = sorted(m.subject for m in mail.outbox)
    assert len(subjects) == 2
    assert any("Eve Bcc: x@example.com" in s for s in subjects)
    assert all(not m.bcc and "\n" not in m.subject for m in mail.outbox)
    monkeypatch.setattr(reminders, "send_mail", real_send)
    call_command("send_token_expiry_reminders", stdout=io.StringIO())
    assert len(mail.outbox) == 3 and "Refused" in mail.outbox[-1].subject


def test_a_new_token_starts_with_no_permission_and_no_project(signed_in, project):
    """Least privilege, as GitHub's fine-grained tokens: nothing is granted by default."""
    form = signed_in.get(CREATE, headers={"HX-Request": "true"}).context["form"]
    assert form["access"].value() == "restricted" and form["reach"].value() == "chosen"
    response = create(signed_in, access="restricted", reach="chosen")
    assert response.status_code == 422
    errors = response.context["form"].errors
    assert "Choose at least one permission" in errors["permissions"][0]
    assert "Tick at least one project" in errors["projects"][0]
    assert not PersonalAccessToken.objects.exists()


def test_every_project_is_an_explicit_choice(signed_in, project):
    create(signed_in, reach="all", projects=[project.pk])
    pat = PersonalAccessToken.objects.get()
    assert list(pat.projects.all()) == []  # every project, now and later


def test_a_personal_token_can_be_renamed_by_its_owner_only(signed_in, client, user, make_user):
    from audit.models import AuditEvent

    pat, _ = personal_token_create(user=user, name="Laptop")
    url = reverse("apikeys:personal_token_rename", args=[pat.pk])
    assert signed_in.get(url).status_code == 200
    refused = signed_in.post(url, {"name": "Two\nlines"})
    assert refused.status_code == 422 and 'id="id_name_error"' in refused.content.decode()
    signed_in.post(url, {"name": "Work laptop"})
    assert PersonalAccessToken.objects.get(pk=pat.pk).name == "Work laptop"
    assert AuditEvent.objects.filter(action="personal_token.renamed", actor=user).exists()
    client.force_login(make_user(email="mallory@example.com"))
    assert client.post(url, {"name": "Mine now"}).status_code == 404
    assert PersonalAccessToken.objects.get(pk=pat.pk).name == "Work laptop"


@pytest.mark.parametrize("odd", ["9223372036854775808", "1" + "0" * 30, "²", "-1", "0", " 7x"])
def test_a_project_id_that_is_no_id_is_an_error_beside_the_field(signed_in, project, odd):
    """Past the bigint range, SQLite could not even run the query that checks the others:
    a 500. Now anything but an id in range is "not a choice", asked of no database."""
    response = create(signed_in, reach="chosen", projects=[str(project.pk), odd])
    assert response.status_code == 422
    page = response.content.decode()
    assert 'id="id_projects_error"' in page
    assert "Tick projects from the list: ones you are a member of." in page
    assert not PersonalAccessToken.objects.exists()


def test_the_agents_help_speaks_of_the_tokens_projects_not_one_project(signed_in, project):
    """A personal token reaches several projects; its help read "every agent of the
    project", copied from the API key form."""
    html = signed_in.get(CREATE).content.decode()
    assert "every agent of the projects it reaches" in html
    assert "every agent of the project," not in html


def test_a_project_the_person_left_is_not_named_as_one_their_token_reaches(
    client, project, user, make_user, make_project
):
    """Removed, the person's token no longer reaches the project: the list says so, and
    names it by its slug, not by a name its owners may have changed since."""
    bob = make_user(email="bob@example.com")
    removed = Membership.objects.create(project=project, user=bob, role="member")
    kept = make_project(bob, name="Bob's own")
    personal_token_create(user=bob, name="Both", projects=[project, kept])
    personal_token_create(user=bob, name="Only the left one", projects=[project])
    membership_remove(membership=removed, by=user)
    project_rename(project=project, name="Codename Falcon", by=user)
    client.force_login(bob)
    page = client.get(LIST).content.decode()
    assert "Codename Falcon" not in page
    assert f"<bdi>Bob's own</bdi>, {project.slug} (you left it)" in page.replace("&#x27;", "'")
