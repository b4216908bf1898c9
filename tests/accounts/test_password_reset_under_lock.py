"""A reset link sets one password: two posts of its set-password page at once (two tabs,
a double click that got past the button, a copy of the cookie) are taken one at a time
on the account's row, and the second finds the link used."""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from accounts.forms import NewPasswordForm
from audit.models import AuditEvent
from tests.conftest import run_together

CONCURRENT = "SQLite serialises all writers: the lock is shown on PostgreSQL."


@pytest.mark.django_db(transaction=True)
def test_two_posts_of_one_reset_link_at_once_set_one_password_and_send_one_notice(
    user, monkeypatch
):
    """Both posts passed the link's check (in dispatch, before the form) before either
    wrote: both set a password, both wrote the audit row and mailed a notice, and the
    account ended with whichever came last while the other's sender was told it was set."""
    if connection.vendor == "sqlite":
        pytest.skip(CONCURRENT)
    link = reverse(
        "accounts:password_reset_confirm",
        args=[
            urlsafe_base64_encode(force_bytes(user.pk)),
            default_token_generator.make_token(user),
        ],
    )
    first = Client()
    opened = first.get(link)
    page = opened["Location"]
    second = Client()
    second.cookies["password_reset"] = opened.cookies["password_reset"].value

    # Both are past the link's check and their form's before either goes on.
    together = threading.Barrier(2)
    real_clean = NewPasswordForm.clean

    def clean_then_wait(form):
        cleaned = real_clean(form)
        together.wait(timeout=10)
        return cleaned

    monkeypatch.setattr(NewPasswordForm, "clean", clean_then_wait)
    answers: dict[str, object] = {}
    passwords = {"first": "the first new passphrase", "second": "the second new passphrase"}

    def post(name: str, client: Client):
        password = passwords[name]
        return lambda: answers.__setitem__(
            name, client.post(page, {"new_password1": password, "new_password2": password})
        )

    mail.outbox.clear()
    run_together(post("first", first), post("second", second))

    done = [name for name, answer in answers.items() if answer.status_code == 302]
    assert len(done) == 1, {name: answer.status_code for name, answer in answers.items()}
    (refused,) = set(answers) - set(done)
    assert answers[refused].status_code == 200
    assert "This link has expired" in answers[refused].content.decode()
    user.refresh_from_db()
    assert user.check_password(passwords[done[0]])
    assert AuditEvent.objects.filter(action="user.password_changed", actor=user).count() == 1
    notices = [m for m in mail.outbox if m.subject == "[Reminix] Your password was changed"]
    assert len(notices) == 1
