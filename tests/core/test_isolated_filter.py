"""The |isolated filter (core/templatetags/display.py): a customer's text between FSI and
PDI unless it is ASCII, escaped once whatever it was given."""

from __future__ import annotations

import pytest
from django.template import Context, Template
from django.utils.safestring import mark_safe

FSI, PDI = "\u2068", "\u2069"


def render(value: object) -> str:
    return Template("{% load display %}{{ value|isolated }}").render(Context({"value": value}))


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("<b>", "&lt;b&gt;"),
        ("Zoë & co", f"{FSI}Zoë &amp; co{PDI}"),
        # Text marked safe already (escaped by whoever marked it) is not escaped again:
        # "&amp;amp;" showed a literal "&amp;" on the page.
        (mark_safe("Tom &amp; Jerry"), "Tom &amp; Jerry"),
        (mark_safe("Zoë &amp; co"), f"{FSI}Zoë &amp; co{PDI}"),
    ],
)
def test_the_filter_escapes_once(value, shown):
    assert render(value) == shown
