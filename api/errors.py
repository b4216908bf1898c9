"""The API's error envelope (shared/CONTRACT.md, "Errors")."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import JsonResponse

from core.redact import redact_held_tokens


def new_request_id() -> str:
    return "req_" + secrets.token_hex(12)


class ApiError(Exception):
    """An error the API answers with. Raise it anywhere below an @api_view."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


# The most of a caller's text (a path, an id from it) that a message repeats: enough to
# tell which call it was, not a path of thousands of characters sent back whole.
ECHOED_CHARS = 80


def echoed(text: str) -> str:
    """`text` from the request as a message repeats it: its start, if it is long. Tokens
    are taken out first (whole, spaced, or their 36 characters without the prefix): one
    cut short is no longer whole enough to be found after."""
    text = redact_held_tokens(text)
    return text if len(text) <= ECHOED_CHARS else text[:ECHOED_CHARS] + "…"


def missing_api_key(
    message: str = "Send your API key as 'Authorization: Bearer <key>'.",
) -> ApiError:
    return ApiError(401, "missing_api_key", message)


def invalid_api_key(message: str = "The API key is not valid.") -> ApiError:
    return ApiError(401, "invalid_api_key", message)


def expired_api_key(message: str) -> ApiError:
    return ApiError(401, "expired_api_key", message)


def suspended_api_key(message: str) -> ApiError:
    return ApiError(401, "suspended_api_key", message)


def ip_not_allowed(noun: str, address: str) -> ApiError:
    shown = address or "an unknown address"
    return ApiError(
        403,
        "ip_not_allowed",
        f"This {noun} may be used only from the networks its owner allowed, and this call "
        f"came from {shown}.",
    )


def insufficient_permissions(message: str) -> ApiError:
    return ApiError(403, "insufficient_permissions", message)


def not_a_member(project: str) -> ApiError:
    """A PAT whose person is not (or, by the time its change would commit, no longer) a
    member of the project it names: to them the project does not exist. `project`: the
    slug named, or "" for an X-Project no project can have, which is not written back (a
    header of megabytes would come back whole)."""
    if not project:
        return insufficient_permissions(
            "This token's user is not a member of the project named in X-Project."
        )
    return insufficient_permissions(f"This token's user is not a member of a project '{project}'.")


def invalid_request(message: str, status: int = 400) -> ApiError:
    return ApiError(status, "invalid_request", message)


def unreadable_request(error: RequestDataTooBig | SuspiciousOperation) -> ApiError:
    """What Django refuses to read (a body over its limit, too many query parameters):
    the envelope's answer, not a 500."""
    if isinstance(error, RequestDataTooBig):
        return invalid_request("The request body is too large.", status=413)
    if isinstance(error, TooManyFieldsSent):
        most = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return invalid_request(f"Too many query parameters: send at most {most}.")
    return invalid_request("The request cannot be read.")


def length_required() -> ApiError:
    """A body sent in chunks (core.http.sent_in_chunks): refused, not read as none, which
    made a write act on defaults (a roll without its overlap, a deploy of an empty config)."""
    return invalid_request(
        "Send the body with a Content-Length header: this API does not read a body sent "
        "with Transfer-Encoding (in chunks).",
        status=411,
    )


def missing_required_field(field: str) -> ApiError:
    return ApiError(400, "missing_required_field", f"The field '{field}' is required.")


def invalid_field_value(field: str, why: str) -> ApiError:
    # `why` continues the sentence ("must be…"), or is one of its own (a service's message).
    joined = ": " if why[:1].isupper() or why[:1] == "“" else " "
    return ApiError(400, "invalid_field_value", f"The field '{field}'{joined}{why}")


def not_found(code: str = "not_found", message: str = "Nothing is at this address.") -> ApiError:
    return ApiError(404, code, message)


RETRY_AFTER_UNAVAILABLE = 5


def service_unavailable() -> ApiError:
    return ApiError(
        503,
        "service_unavailable",
        "The API cannot reach its database just now. Try again in a few seconds.",
        headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE)},
    )


def error_response(error: ApiError, request_id: str) -> JsonResponse:
    response = JsonResponse(
        {
            "error": {
                "code": error.code,
                # A token pasted into a path or a field is not repeated back (CONTRACT.md:
                # never written to a message), nor its 36 characters without the prefix,
                # which anyone who knows the prefixes can use (core.token_shape).
                "message": redact_held_tokens(error.message),
                "status": error.status,
                "requestId": request_id,
            }
        },
        status=error.status,
    )
    for name, value in error.headers.items():
        response[name] = value
    return response
