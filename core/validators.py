"""Validators for text people type that ends up elsewhere: names shown in lists, written
to logs and put into mail subjects, and the addresses mail is sent to."""

from __future__ import annotations

import re
import unicodedata

from django.core.exceptions import ValidationError
from django.utils.encoding import punycode

from core.mail import delivery_address
from core.redact import holds_token

# C0 controls (line breaks and tabs among them), DEL, C1 controls, and the Unicode line
# and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# The invisible characters that override the direction of the text around them
# (embeddings, overrides and isolates; "Trojan Source"): a name holding U+202E reads
# backwards from there on, and turns "Ada invited you to …" in a subject into something
# else. Right-to-left names need none of them (their letters carry their direction), and
# the marks they may use (U+200E, U+200F, U+061C) are not among them.
DIRECTION_CONTROLS = re.compile(r"[\u202a-\u202e\u2066-\u2069]")
# Characters that show nothing and take no space (the zero-width space, the word joiner
# and invisible operators, the byte-order mark, the soft hyphen, the combining grapheme
# joiner, the deprecated Khmer vowels, the Hangul fillers): “Production” with one inside
# reads as “Production” and is another string. The zero-width (non-)joiners and the
# Mongolian variation selectors are not among them: emoji sequences and several scripts
# need them.
INVISIBLE = re.compile(
    r"[\u00ad\u034f\u115f\u1160\u17b4\u17b5\u200b\u2060-\u2064\u3164\ufeff\uffa0]"
)


# The top-level domain no mail ever reaches (RFC 6761), where deleted accounts are kept.
UNDELIVERABLE_DOMAIN = "invalid"

# Control, format, surrogate, private-use and unassigned characters.
_NOT_LETTERS = {"Cc", "Cf", "Cs", "Co", "Cn"}


def single_line(value: str) -> None:
    """A name is one line of printable text: a line break in a project's name would
    otherwise end up in a mail header or split a log line, and a direction override would
    turn the text around it."""
    if _CONTROL.search(value):
        raise ValidationError(
            "Use one line of text: no line breaks, tabs or other control characters.",
            code="control_characters",
        )
    if DIRECTION_CONTROLS.search(value):
        raise ValidationError(
            "Use plain text: no invisible characters that reverse the text around them.",
            code="direction_controls",
        )


def mailable_address(value: str) -> None:
    """An email address mail is sent to: an unquoted local part in ASCII, and a domain
    with an IDNA form. Django's EmailField takes a quoted local part (`"x"@example.com`,
    which is x@example.com's mailbox, or `"a\\x1b"@…`, control characters and all), a local
    part that reads as an encoded word (`=?utf-8?q?bob?=`), a few
    letters beyond ASCII before the @ (the Kelvin sign, the long s: its SMTP backend sends
    none of them) and any letters after it ("a@b.c\\u202e", a label too long once
    encoded): such an account could never be verified, and mail to it would fail at every
    send, long after the form said yes."""
    local, _, domain = value.rpartition("@")
    if local.startswith('"'):
        raise ValidationError(
            "Write the address without quotation marks, as x@example.com.", code="quoted"
        )
    # "=?" opens an RFC 2047 encoded word: the mail library reads `=?utf-8?q?bob?=@…` as
    # one (its To header says bob@…) and Django's SMTP backend refuses it at every send.
    if not local.isascii() or "=?" in local:
        raise ValidationError(
            "Mail to this address cannot be sent: the part before the @ can hold only "
            "letters a to z, digits and . _ + - and a few other signs.",
            code="unmailable",
        )
    try:
        punycode(domain)
    except UnicodeError:
        raise ValidationError(
            "Mail to this address cannot be sent: check the part after the @.",
            code="unmailable",
        ) from None
    # IDNA (of 2003, Django's) drops the soft hyphen and the zero-width space, but keeps
    # what it had no name for then: an isolate (U+2066) would reverse the text around the
    # address on every page and in every log that shows it.
    kept = delivery_address(value).rpartition("@")[2]
    if kept.rstrip(".").rpartition(".")[2] == UNDELIVERABLE_DOMAIN:
        # Mail never reaches .invalid (RFC 6761), and a deleted account keeps an address
        # there (accounts.services.account_delete): one signed up with it first would
        # stand in the way of that account's deletion.
        raise ValidationError(
            "Mail to this address cannot be sent: no mail reaches a .invalid domain.",
            code="unmailable",
        )
    if any(unicodedata.category(c) in _NOT_LETTERS for c in kept):
        raise ValidationError(
            "Use visible characters only after the @: no invisible characters or ones "
            "that reverse the text around them.",
            code="invisible_characters",
        )


def visible(value: str) -> None:
    """A name that must be told apart from others (an API key's) holds no character that
    shows nothing: with one, two names that read alike would be two names."""
    if INVISIBLE.search(value):
        raise ValidationError(
            "Use visible characters only: no zero-width spaces, soft hyphens or other "
            "invisible characters.",
            code="invisible_characters",
        )


def no_secret(value: str) -> None:
    """A name holds no token: one pasted into it (the secret just shown, into the next
    field) would be kept in clear and shown to everyone who sees the name, and in mail.
    Nor a token's 36 characters after its prefix (core.token_shape.holds_token_rest): the
    prefixes are no secret."""
    if holds_token(value):
        raise ValidationError(
            "That looks like a Reminix token: a name is shown to everyone in the project "
            "and in emails, so it is not kept. If it is a real token, revoke it.",
            code="secret",
        )


def no_secret_in_reason(value: str) -> None:
    """A reason (a key's suspension) holds no token: "Leaked: reminix_sk_…" is what one
    would write, and the reason is kept in clear and shown to the team, in the audit log
    and over the API. Nor a token's 36 characters after its prefix, as no_secret."""
    if holds_token(value):
        raise ValidationError(
            "That looks like a Reminix token: a reason is shown to everyone in the project, "
            "so it is not kept. Describe where it was found instead, and revoke it if it "
            "is a real token.",
            code="secret",
        )
