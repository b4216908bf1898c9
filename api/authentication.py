"""Who is calling the API: the bearer token, checked in this order, cheapest first.

1. The token must be in the Authorization header, never in the URL.
2. Its shape and checksum are checked in memory: a typo or a made-up token is refused
   without a database query.
3. One indexed lookup of its keyed hash finds the token (and its project, in the same
   query). A personal access token then needs its user's membership of X-Project; a
   client token, the state of the key or PAT that minted it.
4. Revoked and expired tokens are refused with the reason. Every lookup reads the
   database on every call (nothing is cached), so a revocation holds for the very next
   call on every worker process.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import parse_qsl

from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Membership, Project, User
from api import errors
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from apikeys.tokens import TokenKind, token_hash, token_kind

# Any reminix token, or a parameter named like a credential, in the query string.
_TOKEN_PREFIX = re.compile(r"reminix_(?:sk|ct|pat)_", re.I)
_CREDENTIAL_PARAMS = {"apikey", "api_key", "access_token", "token", "key"}


class Surface(StrEnum):
    """Which API a request is for: the server API, or the browser-facing Client API."""

    V1 = "v1"
    CLIENT = "client"


@dataclass(frozen=True, kw_only=True)
class Caller:
    """The authenticated (or at least identified) caller of one API request.

    An API key acts for its project; a personal access token for its user, in the project
    named by X-Project (None where the endpoint is not project-scoped or the project was
    refused); a client token for its project, through the key or PAT that minted it.
    """

    kind: TokenKind
    project: Project | None
    api_key: ApiKey | None = None
    client_token: ClientToken | None = None
    personal_token: PersonalAccessToken | None = None

    @property
    def user(self) -> User | None:
        return self.personal_token.user if self.personal_token else None

    def has_permission(self, permission: str) -> bool:
        if self.kind is TokenKind.CLIENT_TOKEN:
            return False  # a client token reaches only the Client API, whatever its parent
        token = (
            self.personal_token if self.kind is TokenKind.PERSONAL_ACCESS_TOKEN else self.api_key
        )
        return token is not None and token.has_permission(permission)


@dataclass(frozen=True, kw_only=True)
class ProjectCaller(Caller):
    """The caller of a project-scoped endpoint, once authenticated: it acts on a project."""

    project: Project


@dataclass(frozen=True, kw_only=True)
class ClientCaller(ProjectCaller):
    """A client token's caller on the Client API."""

    client_token: ClientToken


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


def authenticate(
    request: HttpRequest, *, surface: Surface = Surface.V1, project_scoped: bool = True
) -> Caller:
    """The caller of an API request. Raises ApiError (unattributed) or IdentifiedError.

    `project_scoped`: the endpoint acts on one project, which a PAT must name in X-Project.
    """
    token = bearer_token(request)
    kind = token_kind(token)
    if kind is None:
        raise errors.invalid_api_key("The API key is malformed. Check that it was copied whole.")
    if surface is Surface.CLIENT and kind is not TokenKind.CLIENT_TOKEN:
        # Refused before any lookup: a server key sent from a browser is already a leak.
        raise errors.insufficient_permissions(
            "The Client API takes a client token (reminix_ct_…). Never send an API key or a "
            "personal access token from a browser; mint a client token on your server."
        )
    digest = token_hash(token)
    if kind is TokenKind.API_KEY:
        return _api_key_caller(digest)
    if kind is TokenKind.CLIENT_TOKEN:
        caller = _client_token_caller(digest)
        if surface is Surface.V1:
            raise IdentifiedError(
                caller,
                errors.insufficient_permissions(
                    "A client token reaches only the Client API (/client/…), never /v1."
                ),
            )
        return caller
    return _personal_token_caller(digest, request, project_scoped)


def _by_hash[T: models.Model](tokens: QuerySet[T], digest: str) -> T | None:
    """The token with this keyed hash, or None. get() on the unique index: unlike first(),
    it adds no ORDER BY, and it is measurably cheaper on this hot path."""
    try:
        return tokens.get(token_hash=digest)
    except ObjectDoesNotExist:
        return None


def _api_key_caller(digest: str) -> ProjectCaller:
    api_key = _by_hash(ApiKey.objects.select_related("project"), digest)
    if api_key is None:
        raise errors.invalid_api_key("The API key is not valid.")
    caller = ProjectCaller(kind=TokenKind.API_KEY, project=api_key.project, api_key=api_key)
    if reason := api_key.end_reason_at(timezone.now()):
        raise IdentifiedError(caller, errors.expired_api_key(reason))
    return caller


def _client_token_caller(digest: str) -> ClientCaller:
    client_token = _by_hash(
        ClientToken.objects.select_related(
            "project", "api_key", "personal_token", "personal_token__user"
        ),
        digest,
    )
    if client_token is None:
        raise errors.invalid_api_key("The client token is not valid.")
    caller = ClientCaller(
        kind=TokenKind.CLIENT_TOKEN,
        project=client_token.project,
        api_key=client_token.api_key,
        client_token=client_token,
        personal_token=client_token.personal_token,
    )
    if reason := client_token.end_reason_at(timezone.now()):
        raise IdentifiedError(caller, errors.expired_api_key(reason))
    return caller


def _personal_token_caller(digest: str, request: HttpRequest, project_scoped: bool) -> Caller:
    pat = _by_hash(PersonalAccessToken.objects.select_related("user"), digest)
    if pat is None:
        raise errors.invalid_api_key("The personal access token is not valid.")
    unscoped = Caller(kind=TokenKind.PERSONAL_ACCESS_TOKEN, project=None, personal_token=pat)
    if reason := pat.end_reason_at(timezone.now()):
        raise IdentifiedError(unscoped, errors.expired_api_key(reason))
    if not pat.user.is_active:
        raise IdentifiedError(
            unscoped, errors.expired_api_key("This personal access token's user is deactivated.")
        )
    if not project_scoped:
        return unscoped
    named = request.META.get("HTTP_X_PROJECT", "").strip()
    if not named:
        raise IdentifiedError(unscoped, errors.missing_required_field("X-Project"))
    # Membership is read on every call, so leaving a project ends access at once.
    membership = (
        Membership.objects.select_related("project")
        .filter(user=pat.user, project__slug=named)
        .first()
    )
    if membership is None:
        raise IdentifiedError(
            unscoped,
            errors.insufficient_permissions(
                f"This token's user is not a member of a project '{named}'."
            ),
        )
    project = membership.project
    caller = ProjectCaller(
        kind=TokenKind.PERSONAL_ACCESS_TOKEN, project=project, personal_token=pat
    )
    restricted_to = list(pat.projects.values_list("pk", flat=True))
    if restricted_to and project.pk not in restricted_to:
        raise IdentifiedError(
            caller,
            errors.insufficient_permissions(
                f"This personal access token is not allowed to act on project '{named}'."
            ),
        )
    return caller
