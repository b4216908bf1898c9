"""What the filter forms of the paged logs share (a key's calls, the audit log): which
filters were given, the pager's two cursors, and the tidy query string for links."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms


class PagedFilterForm(forms.Form):
    """A GET form of optional filters plus a `before` or `after` pager cursor.

    Subclasses name their filters in `filter_fields` and give `error_messages` a
    "two_cursors" text; a filter a subclass removed from `fields` is ignored.
    """

    filter_fields: tuple[str, ...] = ()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("before") and data.get("after"):
            raise forms.ValidationError(self.error_messages["two_cursors"], code="two_cursors")
        return data

    def _given(self) -> list[str]:
        return [n for n in self.filter_fields if n in self.fields and self.data.get(n)]

    @property
    def is_filtered(self) -> bool:
        return bool(self._given())

    @property
    def cursor_errors(self) -> list[str]:
        """Errors of the page position, which has no field on screen to stand beside."""
        return [
            *self.non_field_errors(),
            *self.errors.get("before", []),
            *self.errors.get("after", []),
        ]

    def query(self, **cursor: object) -> str:
        """This form's filters as a query string, with `cursor` (before= or after=) added."""
        params = {name: self.data[name] for name in self._given()}
        params.update({name: str(value) for name, value in cursor.items() if value is not None})
        return urlencode(params)
