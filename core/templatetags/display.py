"""Template filters for token pages."""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils import timezone
from django.utils.dates import MONTHS_3
from django.utils.html import escape, format_html
from django.utils.safestring import SafeData, SafeString, mark_safe
from django.utils.timesince import timesince, timeuntil

from core.text_direction import html_isolated, text_isolated, without_isolate_controls
from core.validators import DIRECTION_CONTROLS

register = template.Library()


@register.filter
def ago(moment: datetime | None) -> str:
    """Say "just now" under a minute, else Django's "3 hours ago"."""
    if moment is None:
        return ""
    if timezone.now() - moment < timedelta(minutes=1):
        return "just now"
    return f"{timesince(moment)} ago"


@register.filter
def until(moment: datetime | None, depth: int = 2) -> str:
    """ "in 3 hours, 12 minutes" (Django's timeuntil), or "now" once it has passed;
    `until:1` says the largest unit alone ("in 3 hours"), for a badge."""
    if moment is None:
        return ""
    if moment <= timezone.now():
        return "now"
    return f"in {timeuntil(moment, depth=depth)}"


# What json_summary writes as its JSON escape: the direction controls, and the marks (LRM,
# RLM, ALM), which reverse nothing but move the quotes and commas beside them.
SHOWN_ESCAPED = re.compile(f"{DIRECTION_CONTROLS.pattern}|[\u200e\u200f\u061c]")
# An escape that a cut to `length` characters would leave part of at the end: its
# backslash alone (of \", \n, \\ or \u202e), or with part of its \uXXXX. A backslash
# is an escape's first when an even number of them (whole escaped backslashes) precede it.
HALF_AN_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\(?:u[0-9a-f]{0,3})?$")


@register.filter
def json_summary(value: Any, length: int = 60) -> str:
    """A JSON value on one line, cut to `length` characters. Its direction controls and
    marks are written as their JSON escapes (\\u202e), the same JSON: a customer's context
    holds what their users typed, and an override obeyed turned the rest of it around. A
    cut falls before an escape, not inside it."""
    text = json.dumps(value, separators=(", ", ": "), ensure_ascii=False)
    text = SHOWN_ESCAPED.sub(lambda control: f"\\u{ord(control[0]):04x}", text)
    if len(text) <= length:
        return text
    return HALF_AN_ESCAPE.sub(r"\1", text[: length - 1]) + "…"


@register.filter
def underscore_breaks(value: str) -> SafeString:
    """An error code (`insufficient_permissions`) that a narrow column may break after its
    underscores, and nowhere else: escaped, with a <wbr> after each "_". Broken anywhere,
    it read "expired_api_ke / y"."""
    return mark_safe(escape(value).replace("_", "_<wbr>"))  # noqa: S308 (escaped first)


@register.filter
def bdi(value: Any) -> SafeString:
    """A customer's text (a name, a user agent, an alert's summary) in a <bdi>, escaped, so
    that a direction override or right-to-left letters in it reorder nothing around it;
    without the isolate controls that would close the <bdi> early (core.text_direction).
    Markup already made safe (notes through linebreaksbr) keeps its tags."""
    if isinstance(value, SafeData):
        # Taking characters that are not markup out of safe HTML keeps it safe.
        return mark_safe(f"<bdi>{without_isolate_controls(str(value))}</bdi>")  # noqa: S308
    return html_isolated(str(value))


@register.filter(expects_localtime=True)
def log_time(moment: datetime) -> SafeString:
    """A call's time in a call log (a key's, a token's, the project's): a <time> that
    holds its date and its clock apart, which a narrow screen stacks. The same text as
    `<time datetime="{{ at|date:'c' }}"><span class="date">{{ at|date:"j M Y" }}</span>
    <span class="clock">{{ at|date:"H:i:s" }}</span></time>`, built once per row: three
    date filters on each of a page's fifty rows were a tenth of the page's time (each
    parses its format and looks it up among the locale's)."""
    return mark_safe(  # noqa: S308 (digits and an escaped month name)
        f'<time datetime="{moment.isoformat()}"><span class="date">{moment.day} '
        f"{escape(MONTHS_3[moment.month].title())} {moment.year:04d}</span> "
        f'<span class="clock">{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}'
        "</span></time>"
    )


@register.filter
def request_path(path: str) -> SafeString:
    """A call's path in a call log. At desktop width the log's column cuts a long path,
    which opens whole below it, by keyboard and touch too (a tooltip alone hid it); at
    phone width the log wraps it whole, so there it is plain text (usage.css): a
    disclosure would only show it a second time. A filter, not an included template: an
    include on each of a page's fifty rows cost more than the markup it makes."""
    shown = bdi(path)
    if len(path) > 28:
        return format_html(
            '<details class="reveal path-cut"><summary><span class="path">{}</span>'
            '<span class="visually-hidden"> (show all)</span></summary>'
            '<span class="reveal-whole">{}</span></details>'
            '<span class="path path-whole">{}</span>',
            shown,
            shown,
            shown,
        )
    return format_html('<span class="path">{}</span>', shown)


@register.filter
def isolated(value: Any) -> str:
    """A customer's text where only text can stand (an attribute, the page's <title>, a
    confirm dialog's question) or should (a .button's label: a button is a flex box, so a
    <bdi> in it would be an item of its own, set apart by the gap and read with spaces
    around it): between FSI and PDI unless it is ASCII (core.text_direction.text_isolated).
    Escaped by the template as usual; text marked safe stays so (FSI and PDI are no
    markup), or it was escaped twice and showed its entities ("&amp;")."""
    shown = text_isolated(str(value))
    return mark_safe(shown) if isinstance(value, SafeData) else shown  # noqa: S308


def _first_letter(text: str) -> str:
    """The first letter or digit of `text`, upper-cased, with the combining marks written
    after it ("É" from "e\u0301mile"); "" if it holds none."""
    for at, char in enumerate(text):
        if unicodedata.category(char)[0] in "LN":
            end = at + 1
            while end < len(text) and unicodedata.category(text[end])[0] == "M":
                end += 1
            return unicodedata.normalize("NFC", _upper_letter(char) + text[at + 1 : end])
    return ""


def _upper_letter(char: str) -> str:
    """`char` upper-cased as one character: some upper-case to two ("ß" to "SS", "ﬁ" to
    "FI", "ŉ" to "ʼN"), of which the first capital (or the first) stands for them."""
    upper = char.upper()
    return next((c for c in upper if c.isupper()), upper[0])


@register.filter
def initial(user: Any) -> str:
    """The letter a person's avatar shows: the first letter or digit of their name, else
    of their address, else the address's first character. The name's own first character
    may be a direction control, a combining mark or a space (saved before names refused
    controls), and shown alone it left the avatar blank or a stray accent."""
    email = str(getattr(user, "email", "") or "")
    return _first_letter(str(getattr(user, "name", "") or "")) or _first_letter(email) or email[:1]
