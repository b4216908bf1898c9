"""Settings of the floor: the least a Django project can run with.

Served by gunicorn from benchmarks/ (`floor.wsgi:application`), with the .venv's Python
and Django, the same as the dashboard.
"""

from __future__ import annotations

import os
import secrets

DEBUG = False
# Nothing is signed here (no sessions, no CSRF); a key is only required to be set.
SECRET_KEY = os.environ.get("SECRET_KEY") or secrets.token_urlsafe(50)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
ROOT_URLCONF = "floor.urls"
WSGI_APPLICATION = "floor.wsgi.application"

USE_TZ = True
TIME_ZONE = "UTC"  # as the dashboard (Django would default to America/Chicago)
USE_I18N = False
