"""The two files crawlers and security researchers ask every site for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_GET

# RFC 9116 asks for an Expires under a year away, so a stale file is noticed. The file is
# written from the settings on each request, so it never goes stale: it says half a year
# from the start of today (the same all day, so a cached copy matches a fresh one).
SECURITY_TXT_LIFETIME = timedelta(days=180)
ONE_DAY = 24 * 60 * 60

ROBOTS_TXT = """\
# The dashboard is for its signed-in users; only the API reference is for everyone.
User-agent: *
Allow: /docs/api/
Disallow: /
"""


def _plain_text(body: str) -> HttpResponse:
    response = HttpResponse(body, content_type="text/plain; charset=utf-8")
    patch_cache_control(response, public=True, max_age=ONE_DAY)
    return response


@require_GET
def robots_txt(request: HttpRequest) -> HttpResponse:
    return _plain_text(ROBOTS_TXT)


@require_GET
def security_txt(request: HttpRequest) -> HttpResponse:
    """RFC 9116: whom to tell (SECURITY_CONTACT), until when this holds, and where the
    file lives when the dashboard has a public https address."""
    if not settings.SECURITY_CONTACT:
        raise Http404("No security contact is set.")
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    lines = [f"Contact: {contact}" for contact in settings.SECURITY_CONTACT]
    lines.append(f"Expires: {(today + SECURITY_TXT_LIFETIME).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    lines.append("Preferred-Languages: en")
    if urlsplit(settings.DASHBOARD_URL).scheme == "https":
        lines.append(f"Canonical: {settings.DASHBOARD_URL}/.well-known/security.txt")
    return _plain_text("\n".join(lines) + "\n")
