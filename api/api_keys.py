"""/v1/api-keys: a project's API keys managed by automation, with a personal access token
that was given the `keys` permission (and X-Project). The same services, the same rules
and the same audit events as the dashboard's pages: the PAT's person is the actor.

    GET    /v1/api-keys                 list, newest first (cursor)
    POST   /v1/api-keys                 create: 201, the secret in that body only
    GET    /v1/api-keys/{id}            one
    PATCH  /v1/api-keys/{id}            rename {"name"}
    POST   /v1/api-keys/{id}/roll       {"overlapSeconds"}: 201, the new secret
    POST   /v1/api-keys/{id}/suspend    {"reason"}
    POST   /v1/api-keys/{id}/resume
    DELETE /v1/api-keys/{id}            revoke: 204
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from api import errors
from api.bodies import agent_names_param, json_body, ok, string_list, whole_number
from api.endpoint import ProjectApiRequest, api_view
from api.idempotency import SECRET_FIELDS_ATTRIBUTE
from api.listing import cursor_param, is_row_id, limit_param, page_json
from api.permissions import KEYS
from apikeys.models import ALL_PERMISSIONS, ApiKey, TokenStatus
from apikeys.scopes import AGENT_ACTIONS
from apikeys.services import (
    ROLL_OVERLAPS,
    SUSPENSION_REASON_MAX,
    CannotRoll,
    KeyEnded,
    KeyNameTaken,
    OutOfPolicy,
    TooManyTokens,
    api_key_create,
    api_key_rename,
    api_key_resume,
    api_key_revoke,
    api_key_roll,
    api_key_suspend,
    expiry_checked,
    key_name_taken,
    token_name_checked,
    token_networks_set,
)
from core.client_ip import client_ip
from core.networks import MAX_NETWORKS, parse_networks
from core.paging import keyset_page
from core.validators import single_line

KEY_ID = re.compile(r"key_([0-9]{1,19})")
NAME_MAX = ApiKey._meta.get_field("name").max_length or 100
NAME_TAKEN = "is already the name of a working key here."
MAX_OVERLAP_SECONDS = int(max(ROLL_OVERLAPS.values()).total_seconds())


def api_key_json(key: ApiKey) -> dict[str, Any]:
    """A key as the API shows it: never its secret, nor its hash."""

    def at(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    now = timezone.now()
    status = key.status_at(now)
    previous = None
    if status in (TokenStatus.ACTIVE, TokenStatus.SUSPENDED) and key.previous_secret_works_at(now):
        # It ends with the key: revoked or expired, the key takes both secrets with it.
        ends = key.previous_expires_at
        if key.expires_at is not None and ends is not None:
            ends = min(ends, key.expires_at)
        previous = {"hint": key.previous_hint, "expiresAt": at(ends)}
    return {
        "id": f"key_{key.pk}",
        "name": key.name,
        "hint": key.hint,
        "status": status.value,
        "permissions": key.permission_labels(),  # what it can do: never a PAT's keys
        "agents": key.agent_names,
        "agentActions": key.agent_actions,
        "allowedNetworks": key.allowed_networks,
        "createdAt": at(key.created_at),
        "expiresAt": at(key.expires_at),
        "lastUsedAt": at(key.last_used_at),
        # Where that call came from, as the key list shows it beside the time: the key's
        # own calls (a client token's call marks the client token).
        "lastUsedIp": key.last_used_ip,
        # The key's own last refusal as revoked or expired, and its address: an ended key
        # still tried (the key list's "still tried"). Its client tokens' are not counted.
        "lastRefusedAt": at(key.last_refused_at),
        "lastRefusedIp": key.last_refused_ip,
        "revokedAt": at(key.revoked_at),
        "suspendedAt": at(key.suspended_at),
        "suspendedReason": key.suspended_reason or None,
        "previousSecret": previous,
    }


def _key(request: ProjectApiRequest, key_id: str) -> ApiKey:
    match = KEY_ID.fullmatch(key_id)
    key = None
    if match and is_row_id(match.group(1)):
        key = ApiKey.objects.for_project(request.caller.project).filter(pk=match.group(1)).first()
    if key is None:
        raise errors.not_found(message=f"No API key '{errors.echoed(key_id)}' in this project.")
    return key


def _with_secret(key: ApiKey, secret: str, status: int) -> HttpResponse:
    response = ok({**api_key_json(key), "secret": secret}, status=status)
    # An Idempotency-Key retry must not get the secret again (api/idempotency.py).
    setattr(response, SECRET_FIELDS_ATTRIBUTE, ("secret",))
    return response


def _string(body: dict[str, Any], field: str, *, most: int, required: bool) -> str | None:
    value = body.get(field)
    if value is None:
        if required:
            raise errors.missing_required_field(field)
        return None
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > most:
        raise errors.invalid_field_value(field, f"must be a string of 1 to {most} characters.")
    try:
        single_line(value)
    except ValidationError:
        raise errors.invalid_field_value(
            field, "must be one line of printable text, with no direction overrides."
        ) from None
    return value.strip()


def _name(body: dict[str, Any]) -> str:
    """A key's name as it is kept (apikeys.services.token_name_checked)."""
    name = _string(body, "name", most=NAME_MAX, required=True)
    assert name is not None
    try:
        return token_name_checked(name)
    except ValidationError as refused:
        raise errors.invalid_field_value("name", " ".join(refused.messages)) from None


def _expires_at(body: dict[str, Any]) -> datetime | None:
    raw = body.get("expiresAt")
    if raw is None:
        return None
    parsed = None
    # ASCII alone, as RFC 3339 writes it: parse_datetime's \d also reads "２０２７" and "٢٠٢٧".
    if isinstance(raw, str) and len(raw) <= 40 and raw.isascii():
        try:
            parsed = parse_datetime(raw)
        except ValueError:  # a well-formed date that does not exist (2026-02-30)
            parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise errors.invalid_field_value(
            "expiresAt", "must be an ISO 8601 date and time with its offset."
        )
    try:
        expiry_checked(parsed, now=timezone.now())
    except OutOfPolicy as refused:
        raise errors.invalid_field_value("expiresAt", f"is out of range. {refused}") from None
    # The same moment in UTC: an offset beyond 15:59 (ISO 8601 and Python take up to
    # 23:59) is one PostgreSQL refuses to store. Within the limits above it converts.
    return parsed.astimezone(UTC)


# What a new key takes (json_body refuses any other field: a typo must not make a key
# wider than was asked for).
KEY_FIELDS = (
    "name",
    "permissions",
    "agentActions",
    "agents",
    "allowedNetworks",
    "expiresAt",
)


@api_view(["GET", "POST"], permission=KEYS)
def api_keys(request: ProjectApiRequest) -> HttpResponse:
    if request.method in ("GET", "HEAD"):
        after = cursor_param(request, accepts=is_row_id)
        page = keyset_page(
            ApiKey.objects.for_project(request.caller.project),
            order=("-id",),
            following=(int(after),) if after is not None else None,
            size=limit_param(request),
        )
        return ok(page_json(page, api_key_json))
    body = json_body(request, takes=KEY_FIELDS)
    name = _name(body)
    if key_name_taken(request.caller.project, name):
        raise errors.invalid_field_value("name", NAME_TAKEN)
    permissions = string_list(body, "permissions", most=len(ALL_PERMISSIONS))
    if permissions is not None and (not permissions or set(permissions) - set(ALL_PERMISSIONS)):
        raise errors.invalid_field_value(
            "permissions", f"must name one or more of {', '.join(ALL_PERMISSIONS)}."
        )
    # An empty list of a limit is refused, not read as no limit (what a key's answer writes
    # as []): a caller whose own list filtered down to nothing asked for a narrow key and
    # would get one for every agent, both actions or any network. Left out, it is none.
    agent_actions = string_list(body, "agentActions", most=len(AGENT_ACTIONS))
    if agent_actions is not None and (not agent_actions or set(agent_actions) - set(AGENT_ACTIONS)):
        raise errors.invalid_field_value(
            "agentActions",
            f"must name one or more of {', '.join(AGENT_ACTIONS)}; leave it out for both.",
        )
    agents = agent_names_param(body, "agents")
    if agents == []:
        raise errors.invalid_field_value(
            "agents", "must be a non-empty list of agent names; leave it out for every agent."
        )
    networks = string_list(body, "allowedNetworks", most=MAX_NETWORKS)
    if networks == []:
        raise errors.invalid_field_value(
            "allowedNetworks", "must name one or more networks; leave it out for any network."
        )
    if networks:
        networks, problems = parse_networks("\n".join(networks))
        if problems:
            raise errors.invalid_field_value("allowedNetworks", " ".join(problems))
    expires_at = _expires_at(body)
    caller, ip = request.caller, client_ip(request)
    try:
        with transaction.atomic():  # the key and its networks, or neither
            key, secret = api_key_create(
                project=caller.project,
                name=name,
                created_by=caller.user,
                permissions=permissions,
                expires_at=expires_at,
                ip=ip,
                agent_names=agents,
                agent_actions=agent_actions,
            )
            if networks:
                token_networks_set(key, networks=networks, by=caller.user, ip=ip)
    except KeyNameTaken:  # taken since the check above, by a request running beside this one
        raise errors.invalid_field_value("name", NAME_TAKEN) from None
    except OutOfPolicy as refused:
        raise errors.invalid_field_value("expiresAt", str(refused)) from None
    except TooManyTokens as full:  # no field is wrong; the contract has no limit code
        raise errors.invalid_request(str(full)) from None
    except ValueError as refused:  # a scope the services refuse: bad agent names
        raise errors.invalid_field_value("agents", str(refused)) from None
    return _with_secret(key, secret, 201)


@api_view(["GET", "PATCH", "DELETE"], permission=KEYS)
def api_key_detail(request: ProjectApiRequest, key_id: str) -> HttpResponse:
    key = _key(request, key_id)
    user, ip = request.caller.user, client_ip(request)
    if request.method == "PATCH":
        name = _name(json_body(request, takes=("name",)))
        assert user is not None
        _working(key)  # ended: 409, as a roll of it is, before any word on the name
        if key_name_taken(key.project, name, renaming=key):
            raise errors.invalid_field_value("name", NAME_TAKEN)
        try:
            api_key_rename(api_key=key, name=name, by=user, ip=ip)
        except KeyNameTaken:  # taken since the check above
            raise errors.invalid_field_value("name", NAME_TAKEN) from None
        except KeyEnded as ended:  # revoked since the check above
            raise errors.ApiError(409, "invalid_request", f"{ended} Create a new key.") from None
    elif request.method == "DELETE":
        api_key_revoke(api_key=key, by=user, ip=ip)
        return HttpResponse(status=204)
    return ok(api_key_json(key))


@api_view(["POST"], permission=KEYS)
def api_key_roll_view(request: ProjectApiRequest, key_id: str) -> HttpResponse:
    key = _key(request, key_id)
    body = json_body(request, takes=("overlapSeconds",))
    seconds = whole_number(body.get("overlapSeconds", 0))
    if seconds is None:
        raise errors.invalid_field_value("overlapSeconds", "must be a whole number of seconds.")
    if not 0 <= seconds <= MAX_OVERLAP_SECONDS:
        raise errors.invalid_field_value(
            "overlapSeconds", f"must be from 0 to {MAX_OVERLAP_SECONDS} (7 days)."
        )
    try:
        secret = api_key_roll(
            api_key=key,
            by=request.caller.user,
            overlap=timedelta(seconds=seconds),
            ip=client_ip(request),
        )
    except CannotRoll as cannot:
        raise errors.ApiError(409, "invalid_request", f"{cannot} Create a new key.") from None
    key.refresh_from_db()
    return _with_secret(key, secret, 201)


def _working(key: ApiKey) -> ApiKey:
    """`key`, if it still works: a revoked or expired key cannot be renamed, suspended or
    resumed, as it cannot be rolled (409, naming when it ended). A 200 would say it was done, and
    for a resume that the key works again, which it never will."""
    if ended := key.end_reason_at(timezone.now()):
        raise errors.ApiError(409, "invalid_request", f"{ended} Create a new key.")
    return key


@api_view(["POST"], permission=KEYS)
def api_key_suspend_view(request: ProjectApiRequest, key_id: str) -> HttpResponse:
    key = _working(_key(request, key_id))
    reason = _string(
        json_body(request, takes=("reason",)), "reason", most=SUSPENSION_REASON_MAX, required=True
    )
    assert reason is not None
    try:
        done = api_key_suspend(
            api_key=key, by=request.caller.user, reason=reason, ip=client_ip(request)
        )
    except ValidationError as refused:  # a token pasted into it (no_secret_in_reason)
        raise errors.invalid_field_value("reason", " ".join(refused.messages)) from None
    return _changed_or_ended(key, done)


@api_view(["POST"], permission=KEYS)
def api_key_resume_view(request: ProjectApiRequest, key_id: str) -> HttpResponse:
    key = _working(_key(request, key_id))
    done = api_key_resume(api_key=key, by=request.caller.user, ip=client_ip(request))
    return _changed_or_ended(key, done)


def _changed_or_ended(key: ApiKey, done: bool) -> HttpResponse:
    """The key as it is now; 409 if the change was not made because the key ended after
    _working looked (revoked by someone else meanwhile): a 200 would say it was made."""
    key.refresh_from_db()
    if not done:
        _working(key)
    return ok(api_key_json(key))
