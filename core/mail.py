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


def one_line(text: str, *, limit: int = 200) -> str:
    """`text` as one line for a mail header, or a customer's text in a body (where a line
    break would start a paragraph we never wrote): control characters become a space,
    bidirectional formatting goes (names saved before overrides were refused may hold
    them), an encoded word cannot start, and it is cut to `limit` characters. Django
    refuses a header with a newline (BadHeaderError); this makes sure a customer's name
    never gets that far.

    "=?" opens an RFC 2047 encoded word (`=?utf-8?b?4oCu?=`), which Python's mail library
    (building the message) and the recipient's mail program decode wherever it stands in
    a Subject: a name of printable ASCII would arrive as the override, line break or
    invisible character kept out above. "= ?" reads the same and opens nothing."""
    flat = " ".join(_CONTROL.sub(" ", _BIDI.sub("", text)).split()).replace("=?", "= ?")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


# A local part that needs no quotes (RFC 5322's dot-atom, as Django's EmailValidator reads it).
_DOT_ATOM = re.compile(
    r"[-!#$%&'*+/=?^_`{}|~0-9a-z]+(\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*", re.I | re.A
)


def delivery_address(address: str) -> str:
    """`address` in the one spelling of the mailbox Django's SMTP backend delivers it to:
    the local part unquoted where it needs no quotes (`"a\\b"` is `ab`); the domain as
    IDNA maps it before it is encoded (full-width letters to ASCII, ß to ss, soft hyphens
    and zero-width spaces dropped), written in its letters (exämple.com, not
    xn--exmple-cua.com) and without a trailing dot; all lower-cased. `"x"@Example.com`
    and `x@ｅｘａｍｐｌｅ.com` are `x@example.com`: the accounts keep and compare
    addresses so, for one mailbox is one account."""
    local, _, domain = address.strip().rpartition("@")
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        unquoted = re.sub(r"\\(.)", r"\1", local[1:-1])
        # Only a name that needs no quotes is the same mailbox without them: unquoted,
        # `"m@evil(x"@example.com` would read as m@evil with a comment, and go there.
        if _DOT_ATOM.fullmatch(unquoted):
            local = unquoted
    with contextlib.suppress(UnicodeError):  # else no mail reaches it: kept as typed
        domain = punycode(domain)
        domain = domain.encode("ascii").decode("idna")  # xn--… that is no IDNA stays so
    return f"{local.lower()}@{domain.rstrip('.').lower()}"


# Providers that deliver every spelling of a name with dots in it to one inbox (Gmail
# ignores them), under each of their domains.
DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def inbox(address: str) -> str:
    """The inbox a mail to `address` reaches, for counting mails to it: its delivery
    address, without a `+tag` (the same inbox at nearly every provider), and at Gmail
    without dots in the name. Each spelling of one inbox is otherwise a count of its own,
    and there is no end of them. Not an account's identity: `a+work@` and `a@` may be two
    people where `+` is a letter like any other."""
    local, _, domain = delivery_address(address).rpartition("@")
    local = local.split("+", 1)[0]
    if domain in DOTS_IGNORED:
        local, domain = local.replace(".", ""), DOTS_IGNORED[domain]
    return f"{local}@{domain}"
