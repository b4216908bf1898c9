"""Customer text among our own, isolated so that its direction cannot spill over ours.

A name may hold a direction override (U+202E) or right-to-left letters: shown plain, they
reorder the text after it ("Revoke “Prod” ?" reading otherwise). HTML isolates it in a
<bdi>; where only text can stand (an attribute, a page's <title>, an <option>, a confirm
dialog's question), FSI … PDI, the plain-text isolate, does the same.

Either isolate is closed by the first PDI (U+2069) inside it: a name holding one closes
our isolate itself, and an override after it reverses the rest of the line (Chromium:
"revoke <bdi>a PDI RLO XYZ</bdi> key ABC" reads "revoke aCBA yek ZYX"). So the isolate
controls (U+2066–U+2069) are taken out of what goes inside; names refuse them
(core.validators.DIRECTION_CONTROLS), so only a name saved before that holds one. An
override left inside is harmless: the isolate's end closes it."""

from __future__ import annotations

import re

from django.utils.html import format_html
from django.utils.safestring import SafeString

FSI = "\u2068"
PDI = "\u2069"
ISOLATE_CONTROLS = re.compile(r"[\u2066-\u2069]")


def without_isolate_controls(text: str) -> str:
    """`text` with no LRI, RLI, FSI or PDI left to close or open an isolate around it."""
    return ISOLATE_CONTROLS.sub("", text)


def text_isolated(text: str) -> str:
    """`text` between FSI and PDI, for places that hold text only. ASCII (which holds no
    direction control and no right-to-left letter) is left as it is, so that a label or
    title a reader or a test knows reads unchanged."""
    return text if text.isascii() else f"{FSI}{without_isolate_controls(text)}{PDI}"


def quoted(name: str) -> str:
    """“name”, isolated, for a sentence built in Python and shown as text: a message
    ("“…” is revoked."), a form's error. Plain text, FSI … PDI inside the quotes
    (text_isolated): the template escapes the sentence as any other, and nothing in it is
    marked safe; a <bdi> would need the whole sentence marked safe, and any later
    f-string or str() of it would show the tags as text."""
    return f"“{text_isolated(name)}”"


def html_isolated(text: str) -> SafeString:
    """`text` escaped in a <bdi>, for HTML: a label or message built in Python that names a
    customer's project or key."""
    return format_html("<bdi>{}</bdi>", without_isolate_controls(text))
