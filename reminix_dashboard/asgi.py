"""ASGI entry point, for servers that speak ASGI."""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

from reminix_dashboard.content_type import readable_content_type

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reminix_dashboard.settings.base")

django_application = get_asgi_application()


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Django's, with a Content-Type it cannot make a request of cut to its media type
    (reminix_dashboard/content_type.py), as wsgi.py hands it on."""
    if scope["type"] == "http":
        scope = {**scope, "headers": [_readable_header(h) for h in scope.get("headers", [])]}
    await django_application(scope, receive, send)


def _readable_header(header: tuple[bytes, bytes]) -> tuple[bytes, bytes]:
    name, value = header
    if name.lower() != b"content-type":
        return header
    return name, readable_content_type(value.decode("latin-1")).encode("latin-1")
