"""The Content-Type the web entry points (wsgi.py, asgi.py) hand Django.

Django reads the header's parameters as it makes the request, before any middleware or
the API's frame: a parameter in RFC 2231's form naming a charset Python does not know
(`x*=bogus''a`) raised there, and so did a charset that decodes no text ("hex",
"undefined") once Django decoded the query string or a form's body with it. Each was a 500
and a traceback in the error log, on any path, for anyone. Such a header is handed on as
its media type alone: a charset Django cannot use it ignores anyway, and the API finds its
JSON's encoding itself (core/strict_json.py).
"""

from __future__ import annotations

import functools

from django.utils.http import parse_header_parameters


def readable_content_type(content_type: str) -> str:
    """`content_type` as sent if Django can read it, else its media type alone."""
    if ";" not in content_type or _readable(content_type):
        return content_type
    return content_type.partition(";")[0].strip()


# A client sends the same few headers call after call ("application/json; charset=utf-8"):
# each is read once (about 5 µs), not on every call; bounded, a client sending a new one
# each time costs what reading it costs.
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
