"""`gunicorn peer.wsgi:application`, started by benchmarks/run.py from benchmarks/ with
the .venv-bench Python."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ["DJANGO_SETTINGS_MODULE"] = "peer.settings"
application = get_wsgi_application()
