"""A key whose end is in the last hour of year 9999 (a revocation or an expiry put there by
hand or by a restore): the key list counts each ended key's refusals from the hour after
its end, and on SQLite that hour, a Python datetime, overflowed, so the project's key list
(and the Alerts and front pages, which count them the same) answered 500. PostgreSQL's
timestamps reach far past it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from apikeys.models import ApiKey

LAST_HOUR = datetime(9999, 12, 31, 23, 30, tzinfo=UTC)
IN_9999 = [
    datetime(9999, 1, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, tzinfo=UTC),
    LAST_HOUR,
    datetime.max.replace(tzinfo=UTC),
]


@pytest.mark.parametrize("revoked_at", IN_9999, ids=str)
def test_a_key_revoked_in_year_9999_is_listed_as_revoked(signed_in, project, api_key, revoked_at):
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=revoked_at)

    page = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug]))

    assert page.status_code == 200
    assert [k.pk for k in page.context["ended_keys"]] == [key.pk]
    assert page.context["ended_keys"][0].status == "revoked"
    assert page.context["ended_keys"][0].refusals_since_end == 0


def test_a_key_ending_in_the_last_hour_a_datetime_holds_counts_no_refusals(project, make_key):
    late, _ = make_key(project, name="Late")
    ApiKey.objects.filter(pk=late.pk).update(revoked_at=LAST_HOUR, expires_at=LAST_HOUR)

    counted = ApiKey.objects.filter(pk=late.pk).with_refusals_since_end()

    assert counted.values_list("refusals_since_end", flat=True).get() == 0
