"""Every date a page shows gives its year ("6 Dec 2026, 14:05"), as the lists do: a log
reaches back past New Year, and "6 Dec, 14:05" on a usage page or a webhook's deliveries
would then read as this year's. A format that gives only the time of day is the clock half
of a date shown beside it; the few deliberate exceptions say why."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

DATE_FILTER = re.compile(r"""\|date:(?:"([^"]*)"|'([^']*)')""")
# Format characters that name a day, a weekday or a month (Django's date filter).
DAY_OR_MONTH = re.compile(r"[dDjlNSwzWmMnbEFt]")

DELIBERATE = {
    # The rows of a figures table: the buckets of one range in order, under a heading that
    # names the range; the weekday is what a reader looks for there, and a year on each of
    # ninety rows would crowd the narrow first column at 375 px.
    ("usage/project_usage.html", "D j M"),
    ("usage/project_usage.html", "D j M, H:i"),
    ("usage/api_key_usage.html", "D j M"),
}


def undated_formats() -> list[tuple[str, int, str]]:
    root = Path(settings.BASE_DIR, "templates")
    found = []
    for template in sorted(root.rglob("*.html")):
        name = template.relative_to(root).as_posix()
        for number, line in enumerate(template.read_text().splitlines(), 1):
            for match in DATE_FILTER.finditer(line):
                shape = match.group(1) if match.group(1) is not None else match.group(2)
                if shape in ("c", "r", "U") or "Y" in shape or "y" in shape:
                    continue
                if not DAY_OR_MONTH.search(shape.replace("\\", "")):
                    continue  # a time of day only: the clock beside a dated span
                if (name, shape) not in DELIBERATE:
                    found.append((name, number, shape))
    return found


def test_every_date_in_a_template_gives_its_year():
    assert undated_formats() == []


def test_the_check_finds_a_date_without_its_year():
    assert DATE_FILTER.search('{{ at|date:"j M, H:i" }}').group(1) == "j M, H:i"
    assert DAY_OR_MONTH.search("j M, H:i")
    assert not DAY_OR_MONTH.search("H:i:s")
