"""Validators for text people type that ends up elsewhere: names shown in lists, written
to logs and put into mail subjects."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

# C0 controls (line breaks and tabs among them), DEL, C1 controls, and the Unicode line
# and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def single_line(value: str) -> None:
    """A name is one line of printable text: a line break in a project's name would
    otherwise end up in a mail header or split a log line."""
    if _CONTROL.search(value):
        raise ValidationError(
            "Use one line of text: no line breaks, tabs or other control characters.",
            code="control_characters",
        )
