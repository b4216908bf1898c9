"""WSGI entry point for gunicorn (`make serve`)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from django.core.wsgi import get_wsgi_application

from reminix_dashboard.content_type import readable_content_type

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reminix_dashboard.settings.base")

django_application = get_wsgi_application()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
    """Django's, with a Content-Type it cannot make a request of cut to its media type
    (reminix_dashboard/content_type.py)."""
    if "CONTENT_TYPE" in environ:
        environ["CONTENT_TYPE"] = readable_content_type(environ["CONTENT_TYPE"])
    return django_application(environ, start_response)
