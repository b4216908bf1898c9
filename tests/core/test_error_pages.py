"""The dashboard's own error pages: what a person sees at a wrong address, on a page
their role does not open, with an expired form, or when the server fails. (The API
answers its errors in the contract's JSON envelope instead: tests/api.)"""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django.test import Client, RequestFactory
from django.urls import reverse
from django.views.defaults import server_error

from accounts.models import Membership
from apikeys.models import ApiKey
from tests.conftest import row_locked_elsewhere

STYLESHEET = b'<link rel="stylesheet" href="/static/css/app'


def main(content: bytes) -> bytes:
    return content[content.index(b"<main") : content.index(b"</main>")]


def test_a_wrong_address_gets_the_dashboards_404_page(client, signed_in):
    for answer in (client.get("/no/such/page/"), signed_in.get("/projects/nope/settings/")):
        assert answer.status_code == 404
        assert b"<h1>Page not found</h1>" in answer.content and STYLESHEET in answer.content
        assert b"Go to your projects" in answer.content


def test_another_projects_page_is_the_same_404_as_no_page(signed_in, make_user, make_project):
    other = make_project(make_user())
    theirs = signed_in.get(reverse("accounts:project_settings", args=[other.slug]))
    nothing = signed_in.get("/projects/no-such-project/settings/")
    assert theirs.status_code == nothing.status_code == 404
    # The same page, but for what differs on every answer (the CSRF token, the CSP nonce).
    assert main(theirs.content) == main(nothing.content)
    assert other.name.encode() not in theirs.content


def test_a_page_for_owners_tells_a_member_why(client, project, make_user):
    member = make_user()
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    client.force_login(member)
    answer = client.get(reverse("webhooks:webhook_list", args=[project.slug]))
    assert answer.status_code == 403 and STYLESHEET in answer.content
    assert b"Only a project owner can do this." in answer.content


def test_a_form_sent_without_its_csrf_token_says_what_to_do(user):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    answer = browser.post(reverse("accounts:project_create"), {"name": "Lost"})
    assert answer.status_code == 403 and STYLESHEET in answer.content
    assert b"This form has expired" in answer.content and b"Nothing was changed" in answer.content


def test_a_request_for_an_unknown_host_gets_the_400_page(client):
    answer = client.get("/account/login/", headers={"host": "evil.example"})
    assert answer.status_code == 400 and STYLESHEET in answer.content
    assert b"<h1>Bad request</h1>" in answer.content and b"evil.example" not in answer.content


def test_a_404_leaves_messages_waiting_for_the_next_page(signed_in, project):
    signed_in.post(reverse("accounts:project_settings", args=[project.slug]), {"name": "Renamed"})
    assert signed_in.get("/no/such/page/").status_code == 404
    settings_page = signed_in.get(reverse("accounts:project_settings", args=[project.slug]))
    assert b"Project renamed." in settings_page.content


def test_the_500_page_needs_no_request_context(db):
    answer = server_error(RequestFactory().get("/"))
    assert answer.status_code == 500
    assert b"Something went wrong" in answer.content and STYLESHEET in answer.content


@pytest.mark.django_db(transaction=True)
def test_a_change_that_waits_past_the_lock_timeout_gets_the_busy_page_not_a_500(
    client, user, project, make_key, short_lock_timeout
):
    """A revoke while another transaction holds the key's row past the lock timeout (a
    long change elsewhere): the database error was a 500 'something went wrong'; it is
    a 503 that says to try again, and the same click afterwards goes through."""
    key, _ = make_key(project)
    client.force_login(user)
    revoke = reverse("apikeys:api_key_revoke", args=[project.slug, key.pk])
    with row_locked_elsewhere(key):
        busy = client.post(revoke)
    assert busy.status_code == 503 and busy["Retry-After"] == "5"
    assert b"Busy for a moment" in busy.content and STYLESHEET in busy.content
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None
    assert client.post(revoke).status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_a_database_out_of_reach_gets_the_busy_page(signed_in, project, monkeypatch):
    from accounts.views import projects as project_views

    def unreachable(**kwargs):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr(project_views, "project_rename", unreachable)
    answer = signed_in.post(
        reverse("accounts:project_settings", args=[project.slug]), {"name": "Renamed"}
    )
    assert answer.status_code == 503 and b"Busy for a moment" in answer.content


def test_a_database_out_of_reach_before_any_view_gets_the_busy_page(signed_in, monkeypatch):
    """The database gone (a failover, a restart): a signed-in person's page failed in the
    middleware that reads their session, before any view, where DatabaseBusyMiddleware
    does not reach, so every page was a 500 'something went wrong' until it came back."""
    from django.contrib.sessions.backends.db import SessionStore

    def unreachable(self):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr(SessionStore, "load", unreachable)
    signed_in.raise_request_exception = False
    answer = signed_in.get(reverse("accounts:login"))
    assert answer.status_code == 503 and answer["Retry-After"] == "5"
    assert b"Busy for a moment" in answer.content and STYLESHEET in answer.content


def test_a_database_out_of_reach_before_any_view_is_one_warning_line_per_page(
    signed_in, monkeypatch, caplog
):
    """As for a view's (DatabaseBusyMiddleware): during an outage every page opened
    logged an ERROR and a forty-line traceback of the connection's failure."""
    from django.contrib.sessions.backends.db import SessionStore

    def unreachable(self):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr(SessionStore, "load", unreachable)
    signed_in.raise_request_exception = False
    with caplog.at_level(logging.INFO):
        assert signed_in.get(reverse("accounts:login")).status_code == 503
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.WARNING and not record.exc_info
    assert record.getMessage() == (
        "GET /account/login/: the database could not answer (OperationalError)"
    )


def test_any_other_failure_before_a_view_is_still_the_500_page(signed_in, monkeypatch):
    from django.contrib.sessions.backends.db import SessionStore

    def broken(self):
        raise ValueError("a bug")

    monkeypatch.setattr(SessionStore, "load", broken)
    signed_in.raise_request_exception = False
    answer = signed_in.get(reverse("accounts:login"))
    assert answer.status_code == 500 and b"Something went wrong" in answer.content


def test_a_refused_host_is_one_warning_line_not_a_traceback(client, db):
    """Scanners send every Host they can think of to every address they find: Django
    logs each refusal at ERROR with a fifteen-line traceback of its own code, which
    buries the log and wakes whoever is paged on errors. One line is what it is."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    logger = logging.getLogger("django.security.DisallowedHost")
    keep = Keep()
    logger.addHandler(keep)
    try:
        answer = client.get(reverse("accounts:login"), HTTP_HOST="evil.example")
    finally:
        logger.removeHandler(keep)
    assert answer.status_code == 400
    [record] = kept
    assert record.levelno == logging.WARNING
    assert record.exc_info is None and record.exc_text is None
    assert "evil.example" in record.getMessage()
