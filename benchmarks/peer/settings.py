"""Production-style settings for the peer: DEBUG off, JSON only, no sessions.

The database settings match what the dashboard runs with under `make bench`
(persistent connections with health checks, JIT off), so the two differ by framework and
not by connection handling. BENCH_PEER_DATABASE_URL (postgres://user@host:port/name) and
SECRET_KEY come from benchmarks/run.py.
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

DEBUG = False
SECRET_KEY = os.environ["SECRET_KEY"]
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rest_framework",
    "rest_framework_api_key",
]
# What an API-only project keeps: no sessions, CSRF, messages or templates.
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "peer.urls"
WSGI_APPLICATION = "peer.wsgi.application"


def _database(url: str) -> dict[str, object]:
    """django-environ's db() for the one URL shape the harness passes, without the package."""
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": int(os.environ.get("CONN_MAX_AGE", "600")),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": {"options": "-c jit=off"},
    }


DATABASES = {"default": _database(os.environ["BENCH_PEER_DATABASE_URL"])}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REST_FRAMEWORK = {
    # The key is the only credential: no session or basic authentication to try first.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["peer.permissions.HasBearerAPIKey"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}

USE_TZ = True
TIME_ZONE = "UTC"  # as the dashboard (Django would default to America/Chicago)
USE_I18N = False
SECURE_SSL_REDIRECT = False  # plain http on loopback, as the dashboard under the bench
