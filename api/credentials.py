"""POST /v1/credentials/revoke: anyone who finds a Reminix token can end it.

No token is needed (the finder has none of their own). The answer is the same whatever
the strings were, `202 {"received": n}`, so the endpoint cannot be used to learn whether
a token is real or still works; strings that fail the checksum never reach the database.
Each address may report REPORTS_PER_MINUTE times a minute.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from api import errors
from api.bodies import json_body, ok
from api.errors import ApiError, error_response, new_request_id
from apikeys.reported import Reporter, tokens_revoke_reported
from core.client_ip import client_ip
from core.counters import throttle_allows

MAX_CREDENTIALS = 100
MAX_CREDENTIAL_LENGTH = 200  # ours are 47 to 48 characters
REPORTS_PER_MINUTE = 10


def credentials_revoke(request: HttpRequest) -> HttpResponse:
    request_id = new_request_id()
    try:
        if request.method != "POST":
            raise ApiError(
                405, "invalid_request", "Use POST on this endpoint.", headers={"Allow": "POST"}
            )
        ip = client_ip(request)
        if not throttle_allows(f"reported:{ip}", limit=REPORTS_PER_MINUTE, window_seconds=60):
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
        credentials = _credentials(json_body(request))
        tokens_revoke_reported(
            secrets=credentials,
            reporter=Reporter(ip=ip, user_agent=request.META.get("HTTP_USER_AGENT", "")),
        )
        response: HttpResponse = ok({"received": len(credentials)}, status=202)
    except ApiError as refused:
        response = error_response(refused, request_id)
    except (OperationalError, InterfaceError):
        response = error_response(errors.service_unavailable(), request_id)
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
