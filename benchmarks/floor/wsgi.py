"""`gunicorn floor.wsgi:application`, started by benchmarks/run.py from benchmarks/."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "floor.settings"
application = get_wsgi_application()
