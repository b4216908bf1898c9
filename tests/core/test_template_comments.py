"""Django's {# … #} comment is one line only: one that runs on is shown on the page."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.urls import reverse


def test_no_template_has_a_comment_that_runs_over_lines():
    runs_on = []
    for template in sorted(Path(settings.BASE_DIR, "templates").rglob("*.html")):
        for number, line in enumerate(template.read_text().splitlines(), 1):
            opened = line.rfind("{#")
            if opened != -1 and "#}" not in line[opened:]:
                runs_on.append(f"{template.name}:{number}")
    assert runs_on == [], "use {% comment %} for these"


def test_the_filter_bars_show_no_comment_text(signed_in, project):
    for name in ("apikeys:client_token_list", "alerts:flag_list"):
        page = signed_in.get(reverse(name, args=[project.slug])).content.decode()
        assert "A button, as on Usage and Audit" not in page, name
