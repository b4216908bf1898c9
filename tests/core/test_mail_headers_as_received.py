"""A mail header as the recipient's mail program reads it: Python's mail library (and every
mail program) decodes an RFC 2047 encoded word (`=?utf-8?b?…?=`) wherever it stands in a
Subject. A name typed as one, all printable ASCII, got past one_line's filtering and was
decoded on arrival into the direction override, line break or invisible character that
one_line (and the name's validators) keep out."""

from __future__ import annotations

import email
import email.policy

import pytest
from django.core import mail

from accounts.invitations import invitation_send
from core.mail import one_line

# U+202E (right-to-left override) and "\r\nBcc: eve@example.com", encoded.
ENCODED_WORDS = [
    "=?utf-8?b?4oCu?=",
    "=?utf-8?q?=0D=0ABcc:_eve@example.com?=",
    "Ops=?utf-8?q?=E2=80=AE?=tnemyap",
    "=?us-ascii?q?x?= =?iso-8859-1?q?=A0y?=",
]


def subject_received(message: mail.EmailMessage) -> str:
    """The Subject as a mail program shows it, from the bytes the SMTP backend sends."""
    sent = message.message(policy=email.policy.SMTP).as_bytes()
    return str(email.message_from_bytes(sent, policy=email.policy.default)["Subject"])


def assert_shows_as_typed(subject: str, typed: str) -> None:
    assert "\u202e" not in subject and "\r" not in subject and "\n" not in subject
    assert "\xa0" not in subject
    # What was typed is still there to read, the "=?" alone set apart.
    assert typed.replace("=?", "= ?") in subject


@pytest.mark.parametrize("name", ENCODED_WORDS)
def test_an_encoded_word_in_a_name_reaches_the_subject_as_typed_not_decoded(name):
    message = mail.EmailMessage(
        subject=one_line(f"[Reminix] Alert in {name}"),
        body="",
        from_email="no-reply@example.com",
        to=["ada@example.com"],
    )
    assert_shows_as_typed(subject_received(message), name)


@pytest.mark.parametrize("name", ENCODED_WORDS)
def test_an_invitation_from_a_project_named_with_an_encoded_word_shows_that_name(
    user, project, django_capture_on_commit_callbacks, name
):
    """An owner names a project so, and invites anyone: the subject the invitee reads must
    not turn around or break where the name stands."""
    project.name = name
    project.save(update_fields=["name"])
    with django_capture_on_commit_callbacks(execute=True):
        invitation_send(project=project, email="bob@example.com", role="member", by=user)
    [message] = mail.outbox
    assert_shows_as_typed(subject_received(message), name)
