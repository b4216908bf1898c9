#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reminix_dashboard.settings.base")
    # A fresh clone works with nothing set. Production sets DEBUG=false for every process
    # (the web server's entry points, wsgi.py and asgi.py, never default to DEBUG).
    os.environ.setdefault("DEBUG", "true")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        settings.INSTALLED_APPS  # noqa: B018 - the settings read the environment here
    except ImproperlyConfigured as unusable:
        # The line names the variable and what it takes; the traceback of the settings'
        # import above it would tell an operator nothing more.
        sys.exit(str(unusable))
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
