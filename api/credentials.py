"""POST /v1/credentials/revoke: anyone who finds a Reminix token can end it.

No token is needed (the finder has none of their own). The answer is the same whatever
the strings were, `202 {"received": n}`, so the endpoint cannot be used to learn whether
a token is real or still works; strings that fail the checksum never reach the database.
Each address may report REPORTS_PER_MINUTE times a minute.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from api import errors
from api.bodies import json_body, ok
from api.errors import ApiError, error_response, new_request_id
from apikeys.reported import Reporter, tokens_revoke_reported
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.http import declared_length

logger = logging.getLogger(__name__)

MAX_CREDENTIALS = 100
MAX_CREDENTIAL_LENGTH = 200  # ours are 47 to 48 characters
MAX_BODY_BYTES = 64 * 1024  # 100 strings of 200 characters, escaped, fit with room
REPORTS_PER_MINUTE = 10


def address_block(ip: str) -> str:
    """What the per-address limit counts: an IPv4 address, or an IPv6 /64 (one host
    usually has a whole /64 to pick addresses from)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def credentials_revoke(request: HttpRequest) -> HttpResponse:
    request_id = new_request_id()
    try:
        if request.method != "POST":
            raise ApiError(
                405, "invalid_request", "Use POST on this endpoint.", headers={"Allow": "POST"}
            )
        ip = client_ip(request)
        if not throttle_allows(
            f"reported:{address_block(ip)}", limit=REPORTS_PER_MINUTE, window_seconds=60
        ):
            now = int(time.time())
            retry_after = 60 - now % 60
            raise ApiError(
                429,
                "rate_limit_exceeded",
                f"At most {REPORTS_PER_MINUTE} reports a minute from one address. "
                f"Retry in {retry_after} s.",
                headers={
                    "Retry-After": str(retry_after),
                    "X-RateLimit-Limit": str(REPORTS_PER_MINUTE),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(now + retry_after),
                },
            )
        length = declared_length(request)
        if length < 0:
            raise errors.invalid_request("The Content-Length header is not a number.")
        if length > MAX_BODY_BYTES:
            raise errors.invalid_request("The request body is too large.", status=413)
        credentials = _credentials(json_body(request))
        tokens_revoke_reported(
            secrets=credentials,
            reporter=Reporter(ip=ip, user_agent=request.META.get("HTTP_USER_AGENT", "")),
        )
        response: HttpResponse = ok({"received": len(credentials)}, status=202)
    except ApiError as refused:
        response = error_response(refused, request_id)
    except RequestDataTooBig:
        too_big = errors.invalid_request("The request body is too large.", status=413)
        response = error_response(too_big, request_id)
    except (OperationalError, InterfaceError):
        response = error_response(errors.service_unavailable(), request_id)
    except Exception:
        logger.exception("Report %s failed", request_id)
        failed = ApiError(
            500,
            "internal_error",
            "Something went wrong on our side. Quote the request id if you contact us.",
        )
        response = error_response(failed, request_id)
    response["X-Request-Id"] = request_id
    response["Cache-Control"] = "no-store"
    return response


def _credentials(body: dict[str, Any]) -> list[str]:
    credentials = body.get("credentials")
    if credentials is None:
        raise errors.missing_required_field("credentials")
    if (
        not isinstance(credentials, list)
        or not 1 <= len(credentials) <= MAX_CREDENTIALS
        or not all(isinstance(c, str) and len(c) <= MAX_CREDENTIAL_LENGTH for c in credentials)
    ):
        raise errors.invalid_field_value(
            "credentials",
            f"must be a list of 1 to {MAX_CREDENTIALS} strings of at most "
            f"{MAX_CREDENTIAL_LENGTH} characters.",
        )
    return [c.strip() for c in credentials]
