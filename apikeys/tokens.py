"""The shape of every Reminix token, and how it is stored.

    <prefix><30 random base62 chars><6 base62 chars of CRC32 over everything before them>

The checksum lets the server (and secret scanners) refuse a mistyped or made-up token
without touching the database. At rest a token is only ever an HMAC-SHA256 under the
server's TOKEN_HASH_KEY: fast enough to check on every API call (microseconds, where a
password hasher would cost ~160 ms), and useless to whoever steals the table without
the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import string
import zlib
from zlib import crc32

from django.conf import settings
from django.db import models

BASE62 = string.digits + string.ascii_uppercase + string.ascii_lowercase
RANDOM_LENGTH = 30  # 30 × log2(62) ≈ 178.6 bits
CHECKSUM_LENGTH = 6  # 62**6 > 2**32, so every CRC32 fits
_SHAPE = re.compile(f"[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH}}}", re.ASCII)


class TokenKind(models.TextChoices):
    """The three kinds of token. The value is what the usage log stores; `prefix` is what
    every token of the kind starts with."""

    API_KEY = "api_key", "API key"
    CLIENT_TOKEN = "client_token", "Client token"
    PERSONAL_ACCESS_TOKEN = "personal_access_token", "Personal access token"

    @property
    def prefix(self) -> str:
        return PREFIXES[self]


PREFIXES: dict[TokenKind, str] = {
    TokenKind.API_KEY: "reminix_sk_",
    TokenKind.CLIENT_TOKEN: "reminix_ct_",
    TokenKind.PERSONAL_ACCESS_TOKEN: "reminix_pat_",
}


def _base62(number: int, width: int) -> str:
    digits = []
    for _ in range(width):
        number, remainder = divmod(number, 62)
        digits.append(BASE62[remainder])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode("ascii")), CHECKSUM_LENGTH)


class Secret(str):
    """A new token: a str wherever it is used, but repr() shows only its prefix.

    Whatever prints a container by repr() (Django's DEBUG log of a template variable
    that failed to resolve dumps the whole context; error reports and debuggers show a
    frame's locals) then cannot carry the token out of the one response that shows it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        prefix = next((p for p in PREFIXES.values() if self.startswith(p)), "")
        return f"<secret {prefix}…>"


def token_generate(kind: TokenKind) -> Secret:
    """A new token of `kind`. Show it once; store only token_hash() and token_hint()."""
    body = kind.prefix + "".join(secrets.choice(BASE62) for _ in range(RANDOM_LENGTH))
    return Secret(body + _checksum(body))


def token_kind(token: str) -> TokenKind | None:
    """The kind of a well-formed token with a valid checksum, else None. No database."""
    kind = next((k for k, prefix in PREFIXES.items() if token.startswith(prefix)), None)
    if kind is None:
        return None
    if not _SHAPE.fullmatch(token, len(kind.prefix)):
        return None
    body, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(_checksum(body), checksum):
        return None
    return kind


# A run of base62 long enough to hold the rest of a token after its prefix.
_RUN = re.compile(f"[0-9A-Za-z]{{{RANDOM_LENGTH + CHECKSUM_LENGTH},}}", re.ASCII)
_DIGIT = {char: value for value, char in enumerate(BASE62)}
_PREFIX_CRCS = tuple(zlib.crc32(prefix.encode("ascii")) for prefix in PREFIXES.values())


def holds_token_rest(text: str) -> bool:
    """Whether `text` holds the 36 characters of a token after its prefix, anywhere (within
    a longer run of letters and digits too), known by their checksum: whoever reads them
    knows the prefixes. A made-up string of that shape passes one prefix's checksum once
    in 62**6 (about 5.7e10). Every window of every run is tried, its checksum's value
    carried from the last: 4,096 characters took about 5 ms of letters and 16 ms of zeros
    (whose every window has a checksum below 2**32 to compare) on a busy 2-core machine."""
    width = RANDOM_LENGTH + CHECKSUM_LENGTH
    highest = 62 ** (CHECKSUM_LENGTH - 1)
    sk, ct, pat = _PREFIX_CRCS
    for run in _RUN.finditer(text):
        raw = run.group().encode("ascii")
        digits = [_DIGIT[char] for char in run.group()]
        checksum = 0
        for digit in digits[RANDOM_LENGTH:width]:
            checksum = checksum * 62 + digit
        for start in range(len(raw) - width + 1):
            if start:  # the window one on: its checksum's first digit out, the next one in
                leaving = digits[start + RANDOM_LENGTH - 1]
                checksum = (checksum - leaving * highest) * 62 + digits[start + width - 1]
            if checksum > 0xFFFFFFFF:  # no CRC32's
                continue
            random_part = raw[start : start + RANDOM_LENGTH]
            if checksum in (
                crc32(random_part, sk),
                crc32(random_part, ct),
                crc32(random_part, pat),
            ):
                return True
    return False


def token_hash(token: str) -> str:
    """The keyed hash that stands for a token in the database (64 hex characters)."""
    return hmac.new(
        settings.TOKEN_HASH_KEY.encode(), token.encode("ascii"), hashlib.sha256
    ).hexdigest()


def token_hint(token: str, kind: TokenKind) -> str:
    """What the dashboard shows of a token: its prefix, first 4 and last 4 characters."""
    random_part = token[len(kind.prefix) :]
    return f"{kind.prefix}{random_part[:4]}…{token[-4:]}"
