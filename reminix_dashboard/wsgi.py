"""WSGI entry point for gunicorn (`make serve`)."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any

from django.core.wsgi import get_wsgi_application
from django.utils.http import parse_header_parameters

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIEnvironment

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reminix_dashboard.settings.base")

django_application = get_wsgi_application()


def application(environ: WSGIEnvironment, start_response: StartResponse) -> Any:
    """Django's, with a Content-Type it cannot make a request of cut to its media type.
    Django reads the header's parameters as it makes the request, before any middleware
    or the API's frame: a parameter in RFC 2231's form naming a charset Python does not
    know (`x*=bogus''a`) raised there, and so did a charset that decodes no text ("hex",
    "undefined") once it decoded the query string with it. Each was a 500 and a traceback
    in the error log, on any path, for anyone: a charset Django cannot use it ignores
    anyway, and the API finds its JSON's encoding itself (core/strict_json.py)."""
    content_type = environ.get("CONTENT_TYPE", "")
    if ";" in content_type and not _readable(content_type):
        environ["CONTENT_TYPE"] = content_type.partition(";")[0].strip()
    return django_application(environ, start_response)


# A client sends the same few headers call after call ("application/json; charset=utf-8"):
# read each once (about 5 µs), not on every call.
@functools.lru_cache(maxsize=256)
def _readable(content_type: str) -> bool:
    try:
        _, parameters = parse_header_parameters(content_type)
        if charset := parameters.get("charset"):
            b"a".decode(charset)
    except UnicodeDecodeError:
        return True  # a text encoding (utf-16 takes two bytes): Django falls back on those
    except (ValueError, LookupError):  # UnicodeError is a ValueError
        return False
    return True
