"""Customer text with a direction override (U+202E) or right-to-left letters in it, shown
in the dashboard: a user agent or path a client sent, a key's, token's or agent's name saved
before names refused such characters, an alert's summary that quotes them. Shown plain, an
override reversed the text after it in its cell (the address beside a user agent, the hint
beside a key's name). In the tables and lists, each is shown in a <bdi>, which isolates it:
whatever it holds stays inside it."""

from __future__ import annotations

import re

from django.urls import reverse
from django.utils import timezone

from alerts.models import Flag
from tests.conftest import usage_call
from usage.writer import usage_write

RLO = "\u202e"
# Where the pages show customer text among their own: table cells, list items (the
# overview's), alert summaries, the key filter's options.
_CELLS = re.compile(r"<(td|li|option)\b[^>]*>.*?</\1>|<p class=\"flag-summary\">.*?</p>", re.DOTALL)
# <bdi>, or in an <option> (text only) FSI … PDI, its plain-text equivalent.
_ISOLATED = re.compile(r"<bdi>.*?</bdi>|\u2068[^\u2069]*\u2069", re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


def _cells_unisolated(html: str) -> str:
    """The text of the page's cells outside every <bdi> and FSI … PDI (attributes are no
    text)."""
    cells = "\n".join(match.group() for match in _CELLS.finditer(html))
    return _TAG.sub("", _ISOLATED.sub("", cells))


def test_direction_overrides_in_customer_text_are_isolated_on_every_page_that_shows_it(
    signed_in, project, make_key
):
    key, _ = make_key(project, name="Prod")
    # Saved before names refused direction controls (core.validators): still in the table.
    type(key).objects.filter(pk=key.pk).update(name=f"Prod{RLO}dorp")
    now = timezone.now()
    usage_write(
        [
            usage_call(
                now,
                key=key,
                agent=f"agent{RLO}x",
                path=f"/v1/agents/a{RLO}b/invoke",
                user_agent=f"curl/8 {RLO}0.1 lrx",
            ),
            usage_call(now, key=key, user_agent=f"python {RLO}" + "long " * 10),
        ]
    )
    Flag.objects.create(
        project=project,
        api_key=key,
        kind=Flag.Kind.ENDED_TOKEN_USED,
        severity=Flag.Severity.HIGH,
        dedupe_key="x",
        summary=f"Revoked key “Prod{RLO}dorp” was used",
        first_seen=now,
        last_seen=now,
    )
    pages = {
        "usage:project_calls": [project.slug],
        "usage:api_key_usage": [project.slug, key.pk],
        "usage:project_usage": [project.slug],
        "apikeys:api_key_list": [project.slug],
        "alerts:flag_list": [project.slug],
        "overview:project_overview": [project.slug],
    }
    for name, args in pages.items():
        response = signed_in.get(reverse(name, args=args))
        assert response.status_code == 200, name
        html = response.content.decode()
        assert RLO in "".join(m.group() for m in _CELLS.finditer(html)), name
        shown = _cells_unisolated(html)
        assert RLO not in shown, (name, shown[max(0, shown.find(RLO) - 300) : shown.find(RLO) + 50])
