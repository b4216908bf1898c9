"""Every filter form of the dashboard is one kind of thing: a search landmark with a name,
and a button that says what it does in one word, the same word on every page."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings


def filter_forms() -> list[tuple[str, str, str]]:
    """Each form sent with GET (a filter or a search) in the templates: where, its opening
    tag, and its whole text."""
    found = []
    for template in sorted(Path(settings.BASE_DIR, "templates").rglob("*.html")):
        text = template.read_text()
        for form in re.finditer(r"<form\b[^>]*>.*?</form>", text, re.S):
            tag = form[0][: form[0].index(">") + 1]
            if 'method="get"' in tag:
                line = text.count("\n", 0, form.start()) + 1
                found.append((f"{template.relative_to(settings.BASE_DIR)}:{line}", tag, form[0]))
    return found


def test_the_templates_have_filter_forms_to_check():
    assert len(filter_forms()) >= 8


def test_every_filter_form_is_a_named_search_landmark():
    """The client tokens' and the alerts' filters were plain forms: a screen reader's list
    of landmarks, which offers every other filter, did not offer them."""
    unnamed = [
        where
        for where, tag, _ in filter_forms()
        if 'role="search"' not in tag or not re.search(r'aria-label="[^"]+"', tag)
    ]
    assert unnamed == []


def test_every_filter_form_says_filter_or_search_in_one_word():
    """The buttons said Show, Filter or Search for the same act. Now: Search where the
    form is a text search (a search field), Filter where it narrows a list by its fields."""
    wrong = []
    for where, _, form in filter_forms():
        buttons = re.findall(r'<button type="submit"[^>]*>(.*?)</button>', form, re.S)
        word = "Search" if 'type="search"' in form else "Filter"
        if buttons != [word]:
            wrong.append(f"{where}: {buttons}, not [{word!r}]")
    assert wrong == []
