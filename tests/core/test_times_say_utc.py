"""Every time of day in the tables of the key, token and webhook pages says it is UTC, in
its cell or in its column's name: a reader in another zone must not take 14:05 for their
own clock."""

from __future__ import annotations

import re
from datetime import timedelta
from html.parser import HTMLParser

from django.urls import reverse
from django.utils import timezone

from apikeys.models import PersonalAccessToken
from apikeys.services import api_key_suspend, client_token_create
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b")


class _Cells(HTMLParser):
    """Each table cell's data-label and text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []
        self._label: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self._label, self._text = dict(attrs).get("data-label") or "", []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._label is not None:
            self.cells.append((self._label, " ".join(self._text)))
            self._label = None

    def handle_data(self, data: str) -> None:
        if self._label is not None:
            self._text.append(data)


def unzoned_times(html: str) -> list[tuple[str, str]]:
    cells = _Cells()
    cells.feed(html)
    return [
        (label, text)
        for label, text in cells.cells
        if CLOCK.search(text) and "UTC" not in label and "UTC" not in text
    ]


def test_every_time_in_the_key_and_token_pages_tables_says_utc(signed_in, user, project, make_key):
    live, _ = make_key(project, name="Live")
    suspended, _ = make_key(project, name="Suspended")
    api_key_suspend(api_key=suspended, by=user, reason="looked odd")
    revoked, _ = make_key(project, name="Revoked")
    revoked.revoke(by=user)
    expired, _ = make_key(project, name="Expired")
    expired.expires_at = timezone.now() - timedelta(days=1)
    expired.save(update_fields=["expires_at"])
    client_token, _ = client_token_create(project=project, api_key=live, context={"u": 1})
    client_token.last_used_at = timezone.now()
    client_token.save(update_fields=["last_used_at"])
    pat = PersonalAccessToken.objects.create(
        user=user, name="Old", token_hash="h" * 64, hint="h", last_used_at=timezone.now()
    )
    pat.revoke(by=user)
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/x",
        format="generic",
        min_severity="low",
        created_by=user,
    )
    WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_id="evt_1",
        event_type="webhook.test",
        payload={},
        status="failed",
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )
    pages = [
        reverse("apikeys:api_key_list", args=[project.slug]),
        reverse("apikeys:client_token_list", args=[project.slug]),
        reverse("apikeys:personal_token_list"),
        reverse("webhooks:webhook_list", args=[project.slug]),
        reverse("webhooks:webhook_detail", args=[project.slug, endpoint.pk]),
    ]
    for page in pages:
        html = signed_in.get(page).content.decode()
        assert CLOCK.search(html), page  # the page does show times of day
        assert unzoned_times(html) == [], page
