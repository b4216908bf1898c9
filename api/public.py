"""The frame of the endpoints anyone may call without a token (reported leaks, GitHub's
secret-scanning alerts): POST only, every answer in the contract's envelope with a
request id and no-store, and nothing escaping as a stack trace.

    @public_post("Report")
    def credentials_revoke(request: HttpRequest) -> HttpResponse: ...
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse

from api import errors
from api.errors import ApiError, error_response, new_request_id
from core.http import declared_length, sent_in_chunks

logger = logging.getLogger(__name__)

type PublicView = Callable[[HttpRequest], HttpResponse]


def public_post(what: str, *, max_bytes: int) -> Callable[[PublicView], PublicView]:
    """`view` answers POSTs of at most `max_bytes`; raise an ApiError for any refusal.
    `what` names a call in the server log when something unforeseen fails."""

    def decorate(view: PublicView) -> PublicView:
        @wraps(view)
        def framed(request: HttpRequest) -> HttpResponse:
            request_id = new_request_id()
            try:
                response = _checked(request, view, max_bytes)
            except ApiError as refused:
                response = error_response(refused, request_id)
            except (RequestDataTooBig, SuspiciousOperation) as unreadable:
                response = error_response(errors.unreadable_request(unreadable), request_id)
            except (OperationalError, InterfaceError):
                # The caller may try again: nothing was done that a retry would repeat badly.
                response = error_response(errors.service_unavailable(), request_id)
            except Exception:
                logger.exception("%s %s failed", what, request_id)
                failed = ApiError(
                    500,
                    "internal_error",
                    "Something went wrong on our side. Quote the request id if you contact us.",
                )
                response = error_response(failed, request_id)
            response["X-Request-Id"] = request_id
            response["Cache-Control"] = "no-store"
            return response

        return framed

    return decorate


def _checked(request: HttpRequest, view: PublicView, max_bytes: int) -> HttpResponse:
    if request.method != "POST":
        raise ApiError(
            405, "invalid_request", "Use POST on this endpoint.", headers={"Allow": "POST"}
        )
    length = declared_length(request)
    if length < 0:
        raise errors.invalid_request("The Content-Length header is not a number.")
    if sent_in_chunks(request):
        raise errors.length_required()
    if length > max_bytes:
        raise errors.invalid_request("The request body is too large.", status=413)
    return view(request)
