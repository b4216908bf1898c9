"""Text that goes into mail headers and bodies."""

from __future__ import annotations

import contextlib
import re

from django.utils.encoding import punycode

# Line breaks and every other control character (C0, DEL, C1, and the Unicode line and
# paragraph separators): in a header, a line break would start a header of its own.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
# Bidirectional formatting (the Arabic letter mark, LRM/RLM, embeddings, overrides,
# isolates): in a name they would reorder the text around it, so that a subject or line
# reads as something we never wrote. Removed, not replaced: they take no space. Names
# refuse the overrides (core.validators.DIRECTION_CONTROLS) but may hold the marks, which
# a mail header does without.
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+")


def plain_text(text: str) -> str:
    """`text` for a mail's body: bidirectional formatting goes (names saved before
    overrides were refused may hold them, and would reorder the sentence around them);
    line breaks stay."""
    return _BIDI.sub("", text)


def one_line(text: str, *, limit: int = 200) -> str:
    """`text` as one line for a mail header: control characters become a space,
    bidirectional formatting goes (names saved before overrides were refused may hold
    them), and it is cut to `limit` characters. Django refuses a header with a newline
    (BadHeaderError); this makes sure a customer's name never gets that far."""
    flat = " ".join(_CONTROL.sub(" ", _BIDI.sub("", text)).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# Providers that deliver every spelling of a name with dots in it to one inbox (Gmail
# ignores them), under each of their domains.
DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def inbox(address: str) -> str:
    """The inbox a mail to `address` reaches, for counting mails to it: as Django sends
    it (the local part unquoted, `"a\\b"` being `ab`; the domain IDNA-encoded, which maps
    full-width letters to ASCII and drops soft hyphens and zero-width spaces), lower-cased,
    without a trailing dot or a `+tag` (the same inbox at nearly every provider), and at
    Gmail without dots in the name. Each spelling of one inbox is otherwise a count of its
    own, and there is no end of them."""
    local, _, domain = address.strip().rpartition("@")
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    with contextlib.suppress(UnicodeError):  # else no mail reaches it: counted as typed
        domain = punycode(domain)
    local, domain = local.split("+", 1)[0].lower(), domain.rstrip(".").lower()
    if domain in DOTS_IGNORED:
        local, domain = local.replace(".", ""), DOTS_IGNORED[domain]
    return f"{local}@{domain}"
