#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reminix_dashboard.settings.base")
    # A fresh clone works with nothing set. Production sets DEBUG=false for every process
    # (the web server's entry points, wsgi.py and asgi.py, never default to DEBUG).
    os.environ.setdefault("DEBUG", "true")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
