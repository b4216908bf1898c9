"""The dashboard's handler500 (reminix_dashboard/urls.py)."""

from __future__ import annotations

import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.views import defaults

from core.middleware import database_busy_page


def server_error(request: HttpRequest) -> HttpResponse:
    """Django's 500 page, except for a database that could not answer outside any view:
    the middleware that reads a signed-in person's session and user runs before views,
    where DatabaseBusyMiddleware's process_exception does not reach, so while the
    database was away (a failover, a restart) every signed-in page was a 500. Django
    calls this while it handles the exception, which is how it is known here."""
    exception = sys.exception()
    if isinstance(exception, OperationalError | InterfaceError):
        return database_busy_page(request, exception)
    return defaults.server_error(request)
