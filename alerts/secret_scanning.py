"""POST /v1/credentials/github-secret-scanning: GitHub's secret-scanning partner alerts.

GitHub scans public repositories, gists and npm packages for strings shaped like our
tokens (prefix and CRC32 checksum) and posts what it finds here, as a JSON array of
{"token", "type", "url", "source"}, signed: the GITHUB-PUBLIC-KEY-SIGNATURE header is a
base64 ECDSA P-256 / SHA-256 signature of the raw body by the key that
GITHUB-PUBLIC-KEY-IDENTIFIER names. Keys are configured, not fetched
(SECRET_SCANNING_PUBLIC_KEYS: {identifier: PEM}, from
https://api.github.com/meta/public_keys/secret_scanning); without any the endpoint is off
(404).

Each token is answered true_positive (a token of ours, working or not) or
false_positive, by its SHA-256 (the token itself is never sent back). A working one is
revoked, its owners emailed (apikeys/reported.py), unless it is an API key of a project
whose policy is to report only; either way a project's token raises a high alert, with
the URL where it was found.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from accounts.models import Project
from alerts.services import flag_found_in_public
from api import errors
from api.bodies import ok, strict_json
from api.public import public_post
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken, TokenStatus
from apikeys.reported import Reporter, tokens_revoke_reported
from apikeys.tokens import TokenKind, token_hash, token_kind
from core.client_ip import client_ip
from core.mail import one_line

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
MAX_MATCHES = 100
MAX_URL = 2000


@dataclass(frozen=True)
class Match:
    """One match in GitHub's post, its texts cut to one line and a bounded length: the token
    (looked up by its keyed hash, never stored), and the type, URL and source that the
    feedback and the raised alert repeat."""

    token: str
    type: str
    url: str
    source: str


@lru_cache(maxsize=32)
def _public_key(pem: str) -> ec.EllipticCurvePublicKey | None:
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        logger.error("A SECRET_SCANNING_PUBLIC_KEYS entry is not a PEM public key")
        return None
    return key if isinstance(key, ec.EllipticCurvePublicKey) else None


def signature_verifies(body: bytes, key_id: str, signature: str) -> bool:
    """Whether `signature` (base64 DER) is the key `key_id`'s ECDSA signature of `body`."""
    pem = settings.SECRET_SCANNING_PUBLIC_KEYS.get(key_id)
    key = _public_key(pem) if isinstance(pem, str) else None
    if key is None:
        return False
    try:
        der = base64.b64decode(signature, validate=True)
        key.verify(der, body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


@public_post("Secret-scanning alert", max_bytes=MAX_BODY_BYTES)
def github_secret_scanning(request: HttpRequest) -> HttpResponse:
    if not settings.SECRET_SCANNING_PUBLIC_KEYS:
        raise errors.not_found(message="Secret-scanning alerts are not received here.")
    key_id = request.META.get("HTTP_GITHUB_PUBLIC_KEY_IDENTIFIER", "")
    signature = request.META.get("HTTP_GITHUB_PUBLIC_KEY_SIGNATURE", "")
    if not key_id or not signature:
        raise errors.missing_required_field(
            "GITHUB-PUBLIC-KEY-IDENTIFIER" if not key_id else "GITHUB-PUBLIC-KEY-SIGNATURE"
        )
    body = request.body
    if not signature_verifies(body, key_id, signature):
        raise errors.insufficient_permissions(
            "The signature does not verify against GitHub's secret-scanning keys."
        )
    matches = _matches(body)
    reporter = Reporter(ip=client_ip(request), user_agent="GitHub secret scanning")
    return ok([_feedback(match, reporter) for match in matches])


def _matches(body: bytes) -> list[Match]:
    try:
        data = strict_json(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as refused:
        raise errors.invalid_request(f"The body is not the alert's JSON: {refused}.") from None
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_MATCHES:
        raise errors.invalid_request(f"The body must be a list of 1 to {MAX_MATCHES} matches.")
    matches = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("token"), str):
            raise errors.invalid_field_value("token", "must be a string in every match.")
        fields = {k: item.get(k) for k in ("type", "url", "source")}
        if any(v is not None and not isinstance(v, str) for v in fields.values()):
            raise errors.invalid_field_value("type", "type, url and source must be strings.")
        matches.append(
            Match(
                token=item["token"][:200],
                type=one_line(fields["type"] or "")[:100],
                url=one_line(fields["url"] or "")[:MAX_URL],
                source=one_line(fields["source"] or "")[:50],
            )
        )
    return matches


def _feedback(match: Match, reporter: Reporter) -> dict[str, Any]:
    """GitHub's feedback for one match: ours or not, by the token's SHA-256."""
    real = _act_on(match, reporter)
    return {
        "token_hash": hashlib.sha256(match.token.encode()).hexdigest(),
        "token_type": match.type,
        "label": "true_positive" if real else "false_positive",
    }


def _act_on(match: Match, reporter: Reporter) -> bool:
    kind = token_kind(match.token)
    if kind is None:
        return False  # not our shape or checksum: no database query
    digest = token_hash(match.token)
    token: ApiKey | ClientToken | PersonalAccessToken | None
    previous_secret = False
    if kind is TokenKind.API_KEY:
        token = ApiKey.objects.filter(token_hash=digest).select_related("project").first()
        if token is None:
            token = (
                ApiKey.objects.filter(previous_token_hash=digest).select_related("project").first()
            )
            previous_secret = token is not None
    elif kind is TokenKind.CLIENT_TOKEN:
        token = ClientToken.objects.filter(token_hash=digest).select_related("project").first()
    else:
        token = PersonalAccessToken.objects.filter(token_hash=digest).first()
    if token is None:
        return False
    report_only = (
        isinstance(token, ApiKey)
        and token.project.leaked_key_action == Project.LeakedKeyAction.REPORT
    )
    now = timezone.now()
    ended = _had_ended(token, previous_secret=previous_secret, at=now)
    revoked = 0 if report_only else tokens_revoke_reported(secrets=[match.token], reporter=reporter)
    if isinstance(token, ApiKey | ClientToken):
        flag_found_in_public(
            project=token.project,
            api_key=token if isinstance(token, ApiKey) else None,
            client_token=token if isinstance(token, ClientToken) else None,
            url=match.url,
            source=match.source,
            revoked=bool(revoked),
            already_ended=ended,
            seen_at=now,
        )
    return True


def _had_ended(
    token: ApiKey | ClientToken | PersonalAccessToken, *, previous_secret: bool, at: datetime
) -> bool:
    """Whether the secret found had stopped working before this find: a key revoked
    before GitHub came upon an old commit, or a rolled key's old secret past its overlap,
    is not one "the project only reports"."""
    if isinstance(token, ClientToken):
        return token.end_reason_at(at) is not None
    if token.status_at(at) in (TokenStatus.REVOKED, TokenStatus.EXPIRED):
        return True
    return previous_secret and isinstance(token, ApiKey) and not token.previous_secret_works_at(at)
