#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

import contextlib
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
    from django.core.management.base import CommandError, CommandParser, handle_default_options

    # --settings and --pythonpath first, as Django's own command line reads them before it
    # reads the settings: read here after the settings, they were ignored without a word.
    options = CommandParser(add_help=False, allow_abbrev=False)
    options.add_argument("--settings")
    options.add_argument("--pythonpath")
    options.add_argument("args", nargs="*")
    with contextlib.suppress(CommandError):  # Django's command line says what is wrong
        handle_default_options(options.parse_known_args(sys.argv[2:])[0])
    try:
        settings.INSTALLED_APPS  # noqa: B018 - the settings read the environment here
    except ImproperlyConfigured as unusable:
        # The line names the variable and what it takes; the traceback of the settings'
        # import above it would tell an operator nothing more.
        sys.exit(str(unusable))
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
