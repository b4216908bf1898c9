"""Tokens out of text that is kept: log lines, the usage log's paths and user agents.

Webhook signing secrets (whsec_) are cut as tokens are. Invitation links' tokens
(reminix_inv_) are redacted too: the link is a path of the dashboard.
So are the signed tokens of an email-change confirmation link (/account/verify/…/) and of
a password-reset link (/account/password/reset/<uid>/…/): django.security logs the path of
a POST refused for its CSRF cookie, and the access log logs every GET.
A token pasted where it does not belong (a URL path, a query string, a user agent) keeps
its prefix, so a reader still sees which kind of token leaked, and loses the rest.
A token is found as it reads, not only as it is spelt: one with invisible characters
inside (a chat's zero-width spaces, a word processor's soft hyphens, a bidi mark) or in
fullwidth or other compatibility forms is copied from a page as a working token.
Plain `re` and `unicodedata`, no Django: gunicorn.conf.py uses it before Django is loaded.
"""

from __future__ import annotations

import copy
import functools
import logging
import re
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote

from core.token_shape import holds_token_rest, token_rests

# Not again where a token was cut already: a text is redacted more than once on its way.
_TOKEN = re.compile(r"(reminix_(?:sk|ct|pat|inv)_)(?!\[redacted\])[0-9A-Za-z]*", re.IGNORECASE)
# The dashboard's own one-time links: an email change's confirmation, a password reset.
_LINK_TOKENS = (
    re.compile(r"(/account/verify/)(?!again/)[^/\s?#\"']+"),
    re.compile(r"(/account/password/reset/[^/\s?#\"']+/)(?!set-password/)[^/\s?#\"']+"),
)
# C0 and C1 controls (NEL, U+0085, is a line break) and Unicode's line and paragraph
# separators: str.splitlines() breaks at each, as a log reader in Python would.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# A token in a URL with spaces in it, as a form ("+") or htmx ("%20") sends one pasted into
# a filter: the dashboard reads it whole (holds_secret on the text without its spaces), so
# the logs cut it whole too, up to a token's 36 characters (what follows is the log's own).
# Once decoded, "%20" is a space: there a space too, but for a request line's own (before
# its HTTP/1.1).
_TOKEN_SPACED_IN_URL = re.compile(
    r"(reminix_(?:sk|ct|pat|inv)_)(?:(?:\+|%20)*[0-9A-Za-z]){1,36}", re.IGNORECASE
)
_TOKEN_SPACED_DECODED = re.compile(
    r"(reminix_(?:sk|ct|pat|inv)_)(?:(?:\+| (?!HTTP/))*[0-9A-Za-z]){1,36}", re.IGNORECASE
)
# A webhook's signing secret so spaced, up to its 43 characters (token_urlsafe(32)).
_WEBHOOK_SPACED_IN_URL = re.compile(r"(whsec_)(?:(?:\+|%20)*[0-9A-Za-z_-]){1,43}")
_WEBHOOK_SPACED_DECODED = re.compile(r"(whsec_)(?:(?:\+| (?!HTTP/))*[0-9A-Za-z_-]){1,43}")
# Long enough to be (most of) a secret; a hint's 4 characters (reminix_sk_AbCd…wxyz) are not.
_SECRET = re.compile(r"(reminix_(?:sk|ct|pat|inv)_)[0-9A-Za-z]{12,}", re.IGNORECASE)
# A webhook's signing secret (webhooks/signing.py: URL-safe base64), cut the same way; its
# hint (whsec_ and 4 characters) is not a secret.
_WEBHOOK_SECRET = re.compile(r"(whsec_)(?!\[redacted\])[0-9A-Za-z_-]*")
_WEBHOOK_SECRET_WHOLE = re.compile(r"(whsec_)[0-9A-Za-z_-]{12,}")
# Characters that show nothing, besides the format characters (Unicode's Cf: zero-width
# spaces and joiners, the word joiner, the byte-order mark, the soft hyphen, direction
# marks, overrides and isolates, tags): the combining grapheme joiner, the Hangul fillers,
# the Khmer inherent vowels (core.validators.INVISIBLE's) and the variation selectors.
_HIDDEN = re.compile(r"[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u3164\ufe00-\ufe0f\uffa0]")


@functools.lru_cache(maxsize=4096)
def _read(char: str) -> str:
    """One character as a reader sees it: nothing if it shows nothing, else its
    compatibility form (NFKC: a fullwidth ｒ or a mathematical 𝐫 is r)."""
    if char.isascii():
        return char
    if unicodedata.category(char) == "Cf" or _HIDDEN.match(char) is not None:
        return ""
    return unicodedata.normalize("NFKC", char)


def _as_read(text: str) -> str:
    """`text` as a reader sees it, for the patterns. One character at a time, so that a
    match maps back onto the text (_origins). The whole text's NFKC would differ only where
    a letter and the mark after it compose, and a mark ends a token either way."""
    return "".join(map(_read, text))


def _origins(text: str) -> list[int]:
    """For each character of _as_read(text), the index in `text` of the one it came from."""
    origin: list[int] = []
    for index, char in enumerate(text):
        origin.extend([index] * len(_read(char)))
    return origin


def _found(pattern: re.Pattern[str], text: str) -> bool:
    if pattern.search(text) is not None:
        return True
    return not text.isascii() and pattern.search(_as_read(text)) is not None


def _cut(
    pattern: re.Pattern[str],
    text: str,
    put: str = "[redacted]",
    *,
    only: Callable[[re.Match[str]], bool] = lambda match: True,
) -> str:
    """`text` with each match of `pattern` (its group 1 a token's prefix) that passes `only`
    cut to that prefix and `put`, found in the text as it reads (_as_read): the whole of a
    disguised token goes, invisible characters and all, and its prefix is written plainly."""
    if text.isascii():  # (nearly every text: as it is spelt is as it reads)
        return pattern.sub(
            lambda match: match.group(1) + put if only(match) else match.group(), text
        )
    read = _as_read(text)
    matches = [match for match in pattern.finditer(read) if only(match)]
    if not matches:
        return text
    origin = _origins(text)
    pieces: list[str] = []
    kept = 0
    for match in matches:
        start, end = origin[match.start()], origin[match.end() - 1] + 1
        pieces += [text[kept:start], match.group(1), put]
        kept = max(kept, end)
    pieces.append(text[kept:])
    return "".join(pieces)


def redact_tokens(text: str) -> str:
    text = _cut(_TOKEN, text)
    if "whsec_" in text:
        text = _cut(_WEBHOOK_SECRET, text)
    if "/account/" in text:  # what both links start with; an API path or user agent rarely
        for link in _LINK_TOKENS:
            text = link.sub(r"\1[redacted]", text)
    return text


def redact_tokens_escaped(text: str) -> str:
    """As redact_tokens, for text a client may have percent-escaped (a URL as sent, a
    referrer, a path decoded once of one escaped twice): "reminix%5Fsk%5F…" or
    "/account%2Fverify%2F…" is no token to the patterns. Decoded (up to three times)
    only where an escape is, and kept decoded only where that found a token to cut, its
    control characters escaped again (a decoded %0A would start a log line of its own).

    Each decoding is of the text as sent, not of one already cut: an escape inside a token
    ("reminix_sk_AbCd%41…") would otherwise leave the token's rest, past the cut, as a
    tail the patterns no longer see as part of it. Decoding only makes a token longer
    (its prefix and characters hold no escape), so the last decoding that found one cuts
    all that the earlier ones did."""
    if _holds_no_token(text):  # (nearly every path and user agent: no pattern tried)
        return text
    if "%" not in text:  # (no loop set up for it)
        return _redact_tokens_in_url(text)
    kept = _redact_tokens_in_url(text)
    decoded = text
    for _ in range(3):
        if "%" not in decoded:
            break
        decoded = unquote(decoded)
        cut = _redact_tokens_in_url(decoded, decoded=True)
        if cut != decoded:
            kept = controls_escaped(cut)
    return kept


def may_hold_token(text: str) -> bool:
    """Whether `text` may hold a token, told cheaply (see _holds_no_token): a text this
    says False of holds none, in any spelling or escape."""
    return not _holds_no_token(text)


def _holds_no_token(text: str) -> bool:
    """Whether no pattern here can match `text`, told without trying them: it is ASCII (as
    it is spelt is as it reads), has no escape, and holds none of the literals every
    pattern starts with (a token's "reminix_" in any case, "whsec_", "/account/")."""
    return (
        text.isascii()
        and "%" not in text
        and "reminix_" not in text.lower()
        and "whsec_" not in text
        and "/account/" not in text
    )


def _redact_tokens_in_url(text: str, *, decoded: bool = False) -> str:
    text = _cut(_TOKEN_SPACED_DECODED if decoded else _TOKEN_SPACED_IN_URL, text)
    if "whsec_" in text:
        text = _cut(_WEBHOOK_SPACED_DECODED if decoded else _WEBHOOK_SPACED_IN_URL, text)
    return redact_tokens(text)


def controls_escaped(text: str) -> str:
    """`text` with its control characters and line separators percent-escaped: one line
    of a log, whatever a client sent (a path decoded from "%0A" holds a line break)."""
    return _CONTROL.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    """A control as its byte ("%0A", "%85"), a separator as its UTF-8 ("%E2%80%A8")."""
    char = match.group()
    if ord(char) < 0x100:
        return f"%{ord(char):02X}"
    return "".join(f"%{byte:02X}" for byte in char.encode())


def holds_secret(text: str) -> bool:
    """Whether `text` holds (most of) a token: never to be kept where it would be shown."""
    return _found(_SECRET, text) or _found(_WEBHOOK_SECRET_WHOLE, text)


# What stands in for a secret in text that is sent on (secrets_stood_in): a token's shape,
# so that whatever refuses a token refuses it, and no token's checksum.
_STAND_IN = "0" * 36


def secrets_stood_in(text: str) -> str:
    """`text` with each secret in it replaced by a stand-in of a secret's shape: for a
    form's field carried through a page (the sudo prompt's hidden inputs) and sent on,
    where the form is to refuse it beside its field as it would the secret, while the
    page holds none. A token with spaces inside it (holds_secret_spaced) goes whole, and
    a token's 36 characters without their prefix (holds_token_rest) are stood in for with
    a prefix, which the forms refuse as they refuse the rest."""
    text = _cut(_SECRET_SPACED, _cut(_SECRET, text, _STAND_IN), _STAND_IN)
    text = _cut(_WEBHOOK_SECRET_WHOLE, text, _STAND_IN)
    return _rests_replaced(text, "reminix_sk_" + _STAND_IN)


def _rests_replaced(text: str, put: str) -> str:
    """`text` with each token's 36 characters without their prefix (token_rests) as `put`."""
    pieces: list[str] = []
    kept = 0
    for start, end in token_rests(text):
        pieces += [text[kept:start], put]
        kept = end
    return "".join(pieces) + text[kept:] if pieces else text


def holds_secret_escaped(text: str) -> bool:
    """As holds_secret, for text a client may have percent-escaped (a URL, where
    "reminix%5Fsk%5F…" is a working token to whoever decodes it): the text as sent and
    decoded up to three times, as redact_tokens_escaped reads it."""
    for _ in range(4):
        if holds_secret(text):
            return True
        if "%" not in text:
            return False
        text = unquote(text)
    return False


# A token with a copy's spaces or line breaks inside it (a terminal that wrapped it), up to
# a token's 36 characters: what the dashboard reads whole (core.htmx._holds_token). A
# terminal wraps where its width ends, inside the prefix too ("remi⏎nix_sk_…").
_SPACED_PREFIX = r"\s*".join("reminix_") + r"\s*(?:s\s*k|c\s*t|p\s*a\s*t|i\s*n\s*v)\s*_"
_SECRET_SPACED = re.compile(rf"({_SPACED_PREFIX})(?:\s*[0-9A-Za-z]){{12,36}}", re.IGNORECASE)


def holds_secret_spaced(text: str) -> bool:
    """As holds_secret, and a token with spaces inside it counts too (a copy's wrapping, a
    no-break space, one typed after the prefix): whoever reads it takes them out, as the
    filters read one (core.htmx._holds_token). For text that is kept and shown: a name, a
    reason, a description, a client token's context.

    Spaced, the letters after a prefix may be words instead ("Leaked: the reminix_sk_ key
    was pasted in Slack", in the one field made for writing about a leak): they read as a
    secret only with a digit, or a capital after a small letter, among them. A token's 36
    random letters and digits lack both about once in 10**12."""
    if holds_secret(text):
        return True
    read = text if text.isascii() else _as_read(text)
    return any(map(_reads_random, _SECRET_SPACED.finditer(read)))


# What words do not hold and a token's random letters and digits nearly always do.
_RANDOM_LOOKING = re.compile(r"[0-9]|[a-z][A-Z]")


def _reads_random(spaced: re.Match[str]) -> bool:
    """Whether what follows the prefix of a match of _SECRET_SPACED reads as a secret."""
    return _RANDOM_LOOKING.search(spaced.group(), spaced.end(1) - spaced.start()) is not None


def holds_token(text: str) -> bool:
    """Whether `text` holds a token as a name, reason or description may not: whole, with
    spaces inside (holds_secret_spaced), or its 36 characters after the prefix, known by
    their checksum (core.token_shape.holds_token_rest): the prefixes are no secret."""
    return holds_secret_spaced(text) or holds_token_rest(text)


def redact_held_tokens(text: str) -> str:
    """`text` without any token holds_token finds in it: a whole one and one with spaces
    inside it keep their prefix (as redact_secrets), 36 characters without theirs go as
    "[redacted]". For text kept before it was checked that way (core.stored_secrets)."""
    return _rests_replaced(
        redact_secrets(_cut(_SECRET_SPACED, text, only=_reads_random)), "[redacted]"
    )


def redact_secrets_spaced(text: str) -> str:
    """As redact_secrets, and a token cut by spaces or line breaks goes whole too: for
    text that echoes what a person pasted (a command's error)."""
    return redact_secrets(_cut(_SECRET_SPACED, text))


def redact_secrets(text: str) -> str:
    """As redact_tokens, but a token's hint is left as it is: for messages that may name
    a hint on purpose (an ended key's successor) and must never repeat a secret."""
    return _cut(_WEBHOOK_SECRET_WHOLE, _cut(_SECRET, text))


def message_of(record: logging.LogRecord) -> str:
    """The record's message, its arguments put in. A call whose arguments do not fit its
    format (one too few) makes getMessage() raise, and from a filter that reaches the code
    that logged, a job or a request, where logging alone would have complained and gone on:
    such a record keeps its format and its arguments side by side, as text."""
    try:
        return record.getMessage()
    except Exception:
        record.msg, record.args = f"{record.msg} {record.args!r}", None
        return record.msg


class RedactTokens(logging.Filter):
    """A logging filter that redacts tokens from every record's message (settings'
    console handler): Django's dev server logs each request line, query string included."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = message_of(record)
        redacted = redact_tokens_escaped(message)  # the dev server's request line is as sent
        if redacted != message:
            record.msg, record.args = redacted, None
        # A traceback repeats the exception's message, which may hold what a client sent:
        # formatted here, redacted, and left where the formatter takes it (exc_text).
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_tokens(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_tokens(record.stack_info)
        return True


class OneLine(logging.Filter):
    """A logging filter that keeps each record to one line (settings' console handler): a
    message may name what a client sent, such as a request's path, which Django decodes
    ("%0A" is a line break), and a traceback repeats its exception's message, which may
    quote a client's value (a database quotes the value it refused). A line break there
    would let the client write a log line of its own, dated and levelled as it chose.
    Control characters are percent-escaped in the message, the traceback and the stack
    alike, joined by an escaped line break ("%0A"). The handler writes a copy: the record
    keeps its exception for any other handler."""

    def filter(self, record: logging.LogRecord) -> bool | logging.LogRecord:
        message = message_of(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        whole = "\n".join(part for part in (message, record.exc_text, record.stack_info) if part)
        escaped = controls_escaped(whole)
        if escaped == message:
            return True
        one = copy.copy(record)
        one.msg, one.args = escaped, None
        one.exc_info, one.exc_text, one.stack_info = None, None, None
        return one


class WarningWithoutTraceback(logging.Filter):
    """For a logger whose records are a client's doing, not a fault of ours (a Host
    header we do not serve): one WARNING line, without the traceback Django attaches."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
