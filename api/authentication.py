"""Who is calling the API: the bearer token, checked in this order, cheapest first.

1. The token must be in the Authorization header, never in the URL.
2. Its shape and checksum are checked in memory: a typo or a made-up token is refused
   without any store being asked.
3. Its keyed hash finds the caller (api/callers.py): the token, its project, whatever
   decides whether it may act (the key or PAT that minted a client token, a PAT's
   membership of X-Project) and the row the endpoint acts on, in one statement, or from
   a worker's copy that one Redis round trip has just shown to be current.
4. Revoked and expired tokens are refused with the reason. A revocation holds for the
   very next call on every worker of every instance (core/invalidation.py says why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import parse_qsl, unquote

from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Membership, Project, User
from api import errors
from api.callers import admit
from api.lookup import Found, Resource
from api.rate_limits import RateLimitState, rate_limit_state
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from apikeys.tokens import PREFIXES, TokenKind, token_hash, token_kind
from core.client_ip import client_ip
from core.networks import allowed

# Any reminix token, or a parameter named like a credential, in the query string.
_TOKEN_PREFIX = re.compile(r"reminix_(?:sk|ct|pat)_", re.I)
_CREDENTIAL_PARAMS = {"apikey", "api_key", "access_token", "token", "key"}
_SLUG = re.compile(r"[-a-zA-Z0-9_]{1,64}")
# What an Origin header can be (printable ASCII, no space): only that is sent to the
# database, where a NUL byte would make PostgreSQL refuse the statement.
ORIGIN_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")


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
    # An API key's caller that presented the secret the key was rolled from.
    previous_secret: bool = False

    @property
    def user(self) -> User | None:
        return self.personal_token.user if self.personal_token else None

    @property
    def token_identity(self) -> str:
        """The token the call counts against: the client token, else the PAT, else the key."""
        token = self.client_token or self.personal_token or self.api_key
        assert token is not None
        return token.change_identity

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


@dataclass(frozen=True)
class Identified:
    """What the token says about a call: who (None if nobody could be identified), the
    refusal if there is one, the caller's rate-limit state (None if not counted), and the
    row the endpoint acts on, if it named one and it exists. `attribute_by`: the hash of a
    token refused before it was looked up, by which its usage entry is attributed when
    written (usage/writer.py)."""

    caller: Caller | None
    refusal: errors.ApiError | None = None
    limits: RateLimitState | None = None
    resource: object | None = None
    origin_allowed: bool = False
    attribute_by: str = ""


class _Refused(Exception):
    def __init__(self, caller: Caller | None, error: errors.ApiError) -> None:
        super().__init__(error.message)
        self.caller = caller
        self.error = error


def _token_in_url(query: str) -> bool:
    # Decoded, so that a percent-encoded token (reminix%5Fsk%5F…) is caught as well, and
    # decoded again where an escape is left (%255F, a URL escaped twice by its client).
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name.lower() in _CREDENTIAL_PARAMS:
            return True
        for _ in range(3):
            if _TOKEN_PREFIX.search(name) or _TOKEN_PREFIX.search(value):
                return True
            if "%" not in name and "%" not in value:
                break
            name, value = unquote(name), unquote(value)
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


def presented_digest(request: HttpRequest) -> str:
    """The hash of the well-formed token the request carries, or "": what a call that
    could not be identified (the database did not answer) is attributed by later, when
    its usage entry is written (usage/writer.py)."""
    try:
        token = bearer_token(request)
    except errors.ApiError:
        return ""
    return token_hash(token) if token_kind(token) is not None else ""


def identify(
    request: HttpRequest,
    *,
    surface: Surface = Surface.V1,
    project_scoped: bool = True,
    resource: Resource | None = None,
    resource_value: str | None = None,
    count: bool = True,
) -> Identified:
    """Who is calling, and whether they may. Never raises for a refusal: a refused caller
    that was identified is still returned, so the call is attributed in the usage log.

    `project_scoped`: the endpoint acts on one project, which a PAT must name in X-Project.
    `resource`: the row of the caller's project the endpoint acts on, by `resource_value`.
    `count`: count the call against the token's rate limit (not when it was, on a first
    look); uncounted, the answer has no rate-limit state.
    """
    try:
        token = bearer_token(request)
        kind = token_kind(token)
        if kind is None:
            # The Client API takes client tokens alone: what it was sent was meant as one,
            # unless its prefix says it is a key or a PAT (cut short in a page: called a
            # client token, its developer went looking for one that was never there).
            meant = next((k for k, prefix in PREFIXES.items() if token.startswith(prefix)), None)
            noun = (
                _noun(meant or TokenKind.CLIENT_TOKEN) if surface is Surface.CLIENT else "API key"
            )
            raise errors.invalid_api_key(
                f"The {noun} is malformed. Check that it was copied whole."
            )
    except errors.ApiError as refused:
        return Identified(None, refused)
    if surface is Surface.CLIENT and kind is not TokenKind.CLIENT_TOKEN:
        # Refused before any lookup: a server key sent from a browser is already a leak,
        # and its answer tells nothing of the key. The call is logged against the key or
        # PAT all the same, looked up when its entry is written: the one call its owners
        # most need to see (detection raises key_on_client_api for a key's).
        return Identified(
            None,
            errors.insufficient_permissions(
                "The Client API takes a client token (reminix_ct_…). Never send an API key "
                "or a personal access token from a browser; mint a client token on your "
                "server."
            ),
            attribute_by=token_hash(token),
        )
    named_project = ""
    if kind is TokenKind.PERSONAL_ACCESS_TOKEN and project_scoped:
        named_project = request.META.get("HTTP_X_PROJECT", "").strip()
    origin = request.META.get("HTTP_ORIGIN", "").strip().lower()
    if resource is not None and resource_value is not None and not resource.accepts(resource_value):
        resource_value = None
    admission = admit(
        kind=kind,
        digest=token_hash(token),
        # Only what a slug or an origin can be is sent to the database: a NUL byte in a
        # header would make PostgreSQL refuse the whole statement.
        project_slug=named_project if _SLUG.fullmatch(named_project) else "",
        origin=origin if surface is Surface.CLIENT and ORIGIN_SHAPE.fullmatch(origin) else "",
        resource=resource,
        resource_value=resource_value,
        count=count,
    )
    found = admission.found
    if found is None:
        return Identified(None, errors.invalid_api_key(f"The {_noun(kind)} is not valid."))
    caller: Caller | None
    try:
        caller = _caller(
            found,
            surface=surface,
            project_scoped=project_scoped,
            named=named_project,
            address=client_ip(request),
        )
        refusal = None
    except _Refused as refused:
        caller, refusal = refused.caller, refused.error
    limits = None
    if caller is not None and count:
        limits = rate_limit_state(token=caller.token_identity, calls=admission.calls)
    return Identified(
        caller,
        refusal,
        limits,
        resource=found.resource,
        origin_allowed=found.origin_allowed,
    )


def _noun(kind: TokenKind) -> str:
    return {
        TokenKind.API_KEY: "API key",
        TokenKind.CLIENT_TOKEN: "client token",
        TokenKind.PERSONAL_ACCESS_TOKEN: "personal access token",
    }[kind]


CLIENT_TOKEN_ENDED = "This client token is no longer valid. Ask the app that gave it for a new one."
CLIENT_TOKEN_SUSPENDED = "This client token cannot be used at the moment. Try again later."


def _caller(
    found: Found, *, surface: Surface, project_scoped: bool, named: str, address: str
) -> Caller:
    now = timezone.now()
    if found.kind is TokenKind.API_KEY:
        assert found.api_key is not None and found.project is not None
        caller = ProjectCaller(
            kind=found.kind,
            project=found.project,
            api_key=found.api_key,
            previous_secret=found.previous_secret,
        )
        if reason := found.api_key.end_reason_at(now):
            raise _Refused(caller, errors.expired_api_key(reason))
        if found.previous_secret and not found.api_key.previous_secret_works_at(now):
            raise _Refused(
                caller, errors.expired_api_key(found.api_key.previous_secret_end_reason())
            )
        if not allowed(address, found.api_key.allowed_networks):
            raise _Refused(caller, errors.ip_not_allowed("API key", address))
        if found.api_key.suspended_at is not None:
            raise _Refused(caller, errors.suspended_api_key(found.api_key.suspension_message()))
        return caller
    if found.kind is TokenKind.CLIENT_TOKEN:
        assert found.client_token is not None and found.project is not None
        client = ClientCaller(
            kind=found.kind,
            project=found.project,
            api_key=found.api_key,
            client_token=found.client_token,
            personal_token=found.personal_token,
        )
        minter_is_member = found.user is not None and found.user.is_active and found.is_member
        if found.client_token.end_reason_at(now, minter_is_member=minter_is_member):
            # The browser holding it is told that it ended, and when if it expired or was
            # revoked itself; not what became of the key or the person that minted it (the
            # project's dashboard shows that).
            reason = found.client_token.own_end_reason_at(now) or CLIENT_TOKEN_ENDED
            raise _Refused(client, errors.expired_api_key(reason))
        if found.api_key is not None and found.api_key.suspended_at is not None:
            # Its key is suspended: refused until the key is resumed, and again the browser
            # is not told why (the key's reason is the project's business).
            raise _Refused(client, errors.suspended_api_key(CLIENT_TOKEN_SUSPENDED))
        if surface is Surface.V1:
            raise _Refused(
                client,
                errors.insufficient_permissions(
                    "A client token reaches only the Client API (/client/…), never /v1."
                ),
            )
        return client
    return _personal_token_caller(
        found, project_scoped=project_scoped, named=named, now=now, address=address
    )


def _personal_token_caller(
    found: Found, *, project_scoped: bool, named: str, now: datetime, address: str
) -> Caller:
    pat = found.personal_token
    assert pat is not None and found.user is not None
    unscoped = Caller(kind=found.kind, project=None, personal_token=pat)
    if reason := pat.end_reason_at(now):
        raise _Refused(unscoped, errors.expired_api_key(reason))
    if not found.user.is_active:
        raise _Refused(
            unscoped, errors.expired_api_key("This personal access token's user is deactivated.")
        )
    if not allowed(address, pat.allowed_networks):
        raise _Refused(unscoped, errors.ip_not_allowed("personal access token", address))
    if not project_scoped:
        return unscoped
    if not named:
        raise _Refused(unscoped, errors.missing_required_field("X-Project"))
    # Membership is read with the token (or checked for changes) on every call, so leaving
    # a project ends access at once.
    if (
        found.project is not None
        and not found.is_member
        and found.project.require_two_factor
        # Said only to members (read on this refusal only): to anyone else the project
        # does not exist, as below.
        and Membership.objects.filter(user=found.user, project=found.project).exists()
    ):
        raise _Refused(
            unscoped,
            errors.insufficient_permissions(
                f"Project '{named}' requires two-factor authentication of its members: set "
                "one up on the dashboard's Security page, then call again."
            ),
        )
    if found.project is None or not found.is_member:
        raise _Refused(unscoped, errors.not_a_member(named if _SLUG.fullmatch(named) else ""))
    caller = ProjectCaller(kind=found.kind, project=found.project, personal_token=pat)
    if found.restricted_elsewhere:
        raise _Refused(
            caller,
            errors.insufficient_permissions(
                f"This personal access token is not allowed to act on project '{named}'."
            ),
        )
    if pat.outlives_policy_of(found.project):
        # The project's lifetime policy, checked on each call: a PAT reaches many projects.
        days = found.project.max_pat_lifetime_days
        raise _Refused(
            caller,
            errors.insufficient_permissions(
                f"Project '{named}' accepts only personal access tokens that expire within "
                f"{days} days of being made or regenerated, and this one "
                f"{'never expires' if pat.expires_at is None else 'lives longer'}. Regenerate "
                "it with a shorter expiry, or make a shorter-lived token."
            ),
        )
    return caller
