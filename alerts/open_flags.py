"""One open alert for a finding: a new find adds to it, or opens it when there is none.

Detection's runs (alerts/detection/flags.py) and GitHub's secret-scanning posts
(alerts.services.flag_found_in_public) both store their findings so."""

from __future__ import annotations

from collections.abc import Callable

from django.db import IntegrityError, transaction

from alerts.models import Flag


def add_or_open(add_to_open: Callable[[], Flag | None], open_new: Callable[[], Flag]) -> Flag:
    """`add_to_open()` (which adds to the finding's open flag, locked, and returns it, or
    returns None), else `open_new()` in a savepoint. No open flag locks no row: two finds
    at once (two detector runs, two of GitHub's posts naming one token) both go to open
    one, and the unique index of open flags refuses the second, which adds to the first's
    instead. If that one is gone again (acknowledged in between), the IntegrityError
    stands."""
    flag = add_to_open()
    if flag is not None:
        return flag
    try:
        with transaction.atomic():
            return open_new()
    except IntegrityError:
        flag = add_to_open()
        if flag is None:
            raise
        return flag
