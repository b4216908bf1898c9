"""POST /v1/credentials/revoke: anyone who finds a Reminix token can end it.

No token is needed (the finder has none of their own). The answer is the same whatever
the strings were, `202 {"received": n}`, so the endpoint cannot be used to learn whether
a token is real or still works; strings that fail the checksum never reach the database.
Each address may report REPORTS_PER_MINUTE times a minute.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse

from api import errors
from api.bodies import json_body, ok
from api.errors import ApiError
from api.public import public_post
from apikeys.reported import Reporter, tokens_revoke_reported
from core.client_ip import client_ip
from core.counters import throttle_allows
from core.networks import address_block

MAX_CREDENTIALS = 100
MAX_CREDENTIAL_LENGTH = 200  # ours are 47 to 48 characters
MAX_BODY_BYTES = 64 * 1024  # 100 strings of 200 characters, escaped, fit with room
REPORTS_PER_MINUTE = 10


@public_post("Report", max_bytes=MAX_BODY_BYTES)
def credentials_revoke(request: HttpRequest) -> HttpResponse:
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
    credentials = _credentials(json_body(request))
    tokens_revoke_reported(
        secrets=credentials,
        reporter=Reporter(ip=ip, user_agent=request.META.get("HTTP_USER_AGENT", "")),
    )
    return ok({"received": len(credentials)}, status=202)


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
