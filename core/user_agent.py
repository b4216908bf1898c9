"""The user agent of the request being answered, for records that keep it beside the
client's address (the audit trail): set by UserAgentMiddleware for the request's length,
read by whoever writes such a record. Outside a request (a scheduled job) there is none.

Kept as a call's is kept in the usage log, at most 255 characters; and since the trail is
shown to every member and exported, a token pasted into the header (curl -A, a script's
mistake), plainly or percent-escaped, is cut and control characters are percent-escaped,
as in the logs (core.redact).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponseBase

from core.redact import controls_escaped, redact_tokens_escaped

USER_AGENT_MAX = 255
# Read this much before the cut: a token that starts within the kept part ends within it,
# so it is cut whole, never left half; and no more of a megabyte header is read for tokens.
_READ = 4 * USER_AGENT_MAX

_current: ContextVar[str] = ContextVar("user_agent", default="")


def user_agent_kept(raw: str) -> str:
    """`raw` as a record keeps it: tokens cut (percent-escaped ones too, as the usage log
    cuts them), controls escaped, at most USER_AGENT_MAX."""
    return controls_escaped(redact_tokens_escaped(raw[:_READ]))[:USER_AGENT_MAX]


def current_user_agent() -> str:
    """The user agent of the request being answered, as kept; "" outside one."""
    return user_agent_kept(_current.get())


class UserAgentMiddleware:
    """Notes the request's User-Agent for its length. Before the API's middleware, so that
    an event written by a /v1 call (a key revoked with a PAT) has it too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        noted = _current.set(str(request.META.get("HTTP_USER_AGENT", "")))
        try:
            return self.get_response(request)
        finally:
            _current.reset(noted)
