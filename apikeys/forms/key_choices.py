"""The key a filter picks (ProjectKeyChoiceField): any of the project's keys by id, listing
the working ones and the recently ended. Used by the client tokens, usage and alerts
pages."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from django import forms
from django.db.models import Q
from django.db.models.functions import Coalesce, Greatest
from django.forms.models import ModelChoiceIterator
from django.utils import timezone

from accounts.models import Project
from apikeys.models import ApiKey, ApiKeyQuerySet, TokenStatus
from core.forms import row_id
from core.text_direction import text_isolated

# The ended keys a key filter lists: those that ended, or were last tried, within the
# widest range the usage pages show (the overview's 92 days; the log keeps 90 by default),
# so every key with a call the pages can show is there, and at most ENDED_KEYS_LISTED of
# them, the latest first: a project that rotates keys daily, or hourly, keeps every ended
# one for ever, and the select is sent again with every filter click. An older key comes
# from a link (an old alert, the audit log), and is listed when it is the one chosen.
ENDED_KEYS_RECENT = datetime.timedelta(days=92)


ENDED_KEYS_LISTED = 100


ENDED_GROUP = "Ended"


class ProjectKeyChoiceIterator(ModelChoiceIterator):
    """The keys a filter offers: the working ones (active or suspended), then the ended
    ones of late in their own group, and the chosen key whatever its age."""

    field: ProjectKeyChoiceField

    def __iter__(self) -> Iterator[Any]:
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        working, ended = self.field.listed_keys()
        yield from (self.choice(key) for key in working)
        if ended:
            yield (ENDED_GROUP, [self.choice(key) for key in ended])

    def __len__(self) -> int:
        working, ended = self.field.listed_keys()
        return len(working) + (1 if ended else 0) + (self.field.empty_label is not None)

    def __bool__(self) -> bool:
        return True


class ProjectKeyChoiceField(forms.ModelChoiceField):
    """One of the project's keys, revoked and expired ones included, from a filter's
    `?key=<id>`. Anything but an id within range is "not a choice", asked of no database:
    "²" or an id past the bigint range would otherwise fail inside the query.

    It takes any key of the project (`offer`), but lists only those a person picks from
    (ProjectKeyChoiceIterator): the project's whole history would be thousands."""

    iterator = ProjectKeyChoiceIterator
    default_error_messages = {
        "invalid_choice": "Choose one of this project’s keys from the list.",
    }

    def __init__(self, *, label: str, empty_label: str, **kwargs: Any) -> None:
        self.chosen_id: int | None = None
        super().__init__(
            queryset=ApiKey.objects.none(),
            required=False,
            label=label,
            empty_label=empty_label,
            **kwargs,
        )

    def offer(self, project: Project, *, chosen: Any) -> None:
        """Take any key of `project`; list its working and lately ended keys, and
        `chosen` (the filter's value as sent) if it is one of the project's."""
        self.chosen_id = row_id(str(chosen).strip()) if chosen else None
        self.queryset = ApiKey.objects.for_project(project).order_by("name", "id")

    def listed_keys(self) -> tuple[list[ApiKey], list[ApiKey]]:
        """The working keys, and the ended ones, each by name (see ENDED_KEYS_RECENT)."""
        keys = self.queryset
        assert isinstance(keys, ApiKeyQuerySet)
        working = list(keys.active())
        ended_at = Coalesce("revoked_at", "expires_at")
        latest = (
            keys.ended()
            .annotate(seen=Greatest(ended_at, Coalesce("last_refused_at", ended_at)))
            .filter(seen__gte=timezone.now() - ENDED_KEYS_RECENT)
            .order_by("-seen", "-id")
            .values("id")[:ENDED_KEYS_LISTED]
        )
        ended_ids = Q(pk__in=latest)
        if self.chosen_id is not None and all(key.pk != self.chosen_id for key in working):
            ended_ids |= Q(pk=self.chosen_id)
        # Of a name, the newest first: a rotated key's successors share its name.
        ended = list(keys.ended().filter(ended_ids).order_by("name", "-id"))
        return working, ended

    def to_python(self, value: Any) -> ApiKey | None:
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if row_id(text) is None:
            raise forms.ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice"
            )
        return super().to_python(text)

    def label_from_instance(self, obj: Any) -> str:
        # An <option> holds text only (no <bdi>): a name that may hold a direction
        # override or right-to-left letters is isolated by FSI and PDI, their plain-text
        # equivalent, so that it cannot reorder the hint after it.
        name = text_isolated(obj.name)
        label = f"{name} ({obj.hint})"
        status = obj.status
        return label if status is TokenStatus.ACTIVE else f"{label}, {status.label.lower()}"
