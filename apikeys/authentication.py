"""Who is calling the API: the bearer token, checked in this order, cheapest first.

1. The token must be in the Authorization header, never in the URL.
2. Its shape and checksum are checked in memory: a typo or a made-up token is refused
   without a database query.
3. One indexed lookup of its keyed hash finds the key (and its project, in the same query).
4. Revoked and expired keys are refused with the reason. The lookup reads the database on
   every call (nothing is cached), so a revocation holds for the very next call on every
   worker process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Project
from apikeys import errors
from apikeys.models import ApiKey, TokenStatus
from apikeys.tokens import TokenKind, token_hash, token_kind

# Any reminix token, or a parameter named like a credential, in the query string.
_TOKEN_PREFIX = re.compile(r"reminix_(?:sk|ct|pat)_", re.I)
_CREDENTIAL_PARAMS = {"apikey", "api_key", "access_token", "token", "key"}


@dataclass(frozen=True)
class Caller:
    """The authenticated (or at least identified) caller of one API request."""

    kind: TokenKind
    project: Project
    api_key: ApiKey


class IdentifiedError(Exception):
    """The token was identified (so the call is attributed in the usage log) but refused."""

    def __init__(self, caller: Caller, error: errors.ApiError) -> None:
        super().__init__(error.message)
        self.caller = caller
        self.error = error


def _token_in_url(query: str) -> bool:
    # Decoded, so that a percent-encoded token (reminix%5Fsk%5F…) is caught as well.
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in _CREDENTIAL_PARAMS:
            return True
        if _TOKEN_PREFIX.search(name) or _TOKEN_PREFIX.search(value):
            return True
    return False


def bearer_token(request: HttpRequest) -> str:
    """The token from 'Authorization: Bearer …', refusing tokens anywhere else."""
    if _token_in_url(request.META.get("QUERY_STRING", "")):
        raise errors.invalid_api_key(
            "Tokens are never accepted in the URL. Send 'Authorization: Bearer <key>', and "
            "revoke this key if the URL was logged or shared."
        )
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.missing_api_key()
    return token.strip()


def authenticate(request: HttpRequest) -> Caller:
    """The caller of an API request. Raises ApiError (unattributed) or IdentifiedError."""
    token = bearer_token(request)
    kind = token_kind(token)
    if kind is None:
        raise errors.invalid_api_key("The API key is malformed. Check that it was copied whole.")
    if kind is not TokenKind.API_KEY:
        raise errors.invalid_api_key("This endpoint takes an API key (reminix_sk_…).")
    api_key = ApiKey.objects.select_related("project").filter(token_hash=token_hash(token)).first()
    if api_key is None:
        raise errors.invalid_api_key("The API key is not valid.")
    caller = Caller(kind=kind, project=api_key.project, api_key=api_key)
    status = api_key.status_at(timezone.now())
    if status is TokenStatus.REVOKED:
        raise IdentifiedError(
            caller,
            errors.expired_api_key(
                f"This API key was revoked on {api_key.revoked_at:%Y-%m-%d %H:%M} UTC."
            ),
        )
    if status is TokenStatus.EXPIRED:
        raise IdentifiedError(
            caller,
            errors.expired_api_key(
                f"This API key expired on {api_key.expires_at:%Y-%m-%d %H:%M} UTC."
            ),
        )
    return caller


def require_permission(caller: Caller, permission: str) -> None:
    if not caller.api_key.has_permission(permission):
        raise errors.insufficient_permissions(
            f"This API key does not have the '{permission}' permission."
        )
