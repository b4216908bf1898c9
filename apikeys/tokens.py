"""Reminix tokens: made, told apart by kind, and how they are stored. Their shape (prefix,
30 random base62 characters, 6 of checksum) is core/token_shape.py's.

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

from django.conf import settings
from django.db import models

from core.token_shape import (
    API_KEY_PREFIX,
    BASE62,
    CHECKSUM_LENGTH,
    CLIENT_TOKEN_PREFIX,
    PERSONAL_ACCESS_TOKEN_PREFIX,
    RANDOM_LENGTH,
    checksum,
)

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
    TokenKind.API_KEY: API_KEY_PREFIX,
    TokenKind.CLIENT_TOKEN: CLIENT_TOKEN_PREFIX,
    TokenKind.PERSONAL_ACCESS_TOKEN: PERSONAL_ACCESS_TOKEN_PREFIX,
}


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
    return Secret(body + checksum(body))


def token_kind(token: str) -> TokenKind | None:
    """The kind of a well-formed token with a valid checksum, else None. No database."""
    kind = next((k for k, prefix in PREFIXES.items() if token.startswith(prefix)), None)
    if kind is None:
        return None
    if not _SHAPE.fullmatch(token, len(kind.prefix)):
        return None
    body, written = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    if not hmac.compare_digest(checksum(body), written):
        return None
    return kind


def token_hash(token: str) -> str:
    """The keyed hash that stands for a token in the database (64 hex characters)."""
    return hmac.new(
        settings.TOKEN_HASH_KEY.encode(), token.encode("ascii"), hashlib.sha256
    ).hexdigest()


def token_hint(token: str, kind: TokenKind) -> str:
    """What the dashboard shows of a token: its prefix, first 4 and last 4 characters."""
    random_part = token[len(kind.prefix) :]
    return f"{kind.prefix}{random_part[:4]}…{token[-4:]}"
