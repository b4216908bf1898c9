"""Each project's alert rules as a batch reads them: its thresholds (alerts/rules.py), or the
defaults where it saved none or its row cannot be read, and the kinds it turned off."""

from __future__ import annotations

import json
import logging

from django.db.models import TextField
from django.db.models.functions import Cast

from alerts.models import AlertRules
from alerts.rules import DEFAULTS, TUNABLES, Thresholds

logger = logging.getLogger(__name__)


type Rules = dict[int, Thresholds]


def _rules_of(project_ids: set[int]) -> Rules:
    """The thresholds of every project in a batch, in one query; a project without its own
    rules gets the defaults."""
    rules: Rules = dict.fromkeys(project_ids, DEFAULTS)
    numbers = [t.name for t in TUNABLES]
    rows = AlertRules.objects.filter(project_id__in=project_ids).values(
        "project_id", *numbers, off_text=_OFF_AS_TEXT
    )
    for row in rows:
        try:
            values = {name: row[name] for name in numbers}
            rules[row["project_id"]] = Thresholds.of(
                values, _kinds_off(row["project_id"], row["off_text"])
            )
        except Exception:  # one project's odd row: its defaults, never everyone's run
            logger.warning("alert rules of project %s unreadable; defaults used", row["project_id"])
    return rules


# The kinds a project turned off, read as text and parsed here: read as JSON by the query,
# a row that Python cannot read back (a number past int()'s 4,300 digits, put there by
# hand or by a restore) raised while the batch's rules were read, outside any project's
# isolation; the batch failed whole, the cursor stayed, and every run met it again.
_OFF_AS_TEXT = Cast("off", output_field=TextField())


def _kinds_off(project_id: int, text: str | None) -> list[object]:
    """The kinds turned off, from a rules row's `off` read with _OFF_AS_TEXT; none if it
    is unreadable."""
    try:
        off = json.loads(text or "[]")
    except (ValueError, RecursionError):
        logger.warning("alert rules of project %s: kinds turned off unreadable", project_id)
        return []
    return off if isinstance(off, list) else []
