"""The key filter of the usage overview, the calls log, the Alerts page and the client
tokens page lists the keys a person would pick (working ones, ended ones of late, the one
chosen), however many keys the project rotated through; it still takes any of the
project's keys from a link, and never another project's."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys.forms.key_choices import ENDED_KEYS_LISTED
from apikeys.models import ApiKey
from tests.conftest import usage_call
from usage.writer import usage_write

PAGES = [
    "usage:project_usage",
    "usage:project_calls",
    "alerts:flag_list",
    "apikeys:client_token_list",
]
# Three times as many as a filter may list (ENDED_KEYS_LISTED): a list of every key would
# show. (2,000 took 0.4-0.6 s to write for each of the file's 14 tests.)
ROTATED = 3 * ENDED_KEYS_LISTED


@pytest.fixture
def rotated(project, make_key):
    """A project that rotated keys for years: ROTATED ended long ago, a few of late, two
    working (one suspended)."""
    now = timezone.now()
    long_ago = now - timedelta(days=400)
    ApiKey.objects.bulk_create(
        ApiKey(
            project=project,
            name="Rotated",
            token_hash=f"{n:064x}",
            hint=f"reminix_sk_…{n:04d}",
            created_at=long_ago - timedelta(days=30),
            revoked_at=long_ago + timedelta(minutes=n),
        )
        for n in range(ROTATED)
    )
    working, _ = make_key(project, name="Production")
    suspended, _ = make_key(project, name="Staging")
    suspended.suspend(by=None, reason="Checking")
    last_week, _ = make_key(project, name="Last week")
    last_week.revoke(by=None)
    ApiKey.objects.filter(pk=last_week.pk).update(revoked_at=now - timedelta(days=7))
    expired, _ = make_key(project, name="Expired lately")
    ApiKey.objects.filter(pk=expired.pk).update(expires_at=now - timedelta(days=2))
    old = ApiKey.objects.filter(project=project, name="Rotated").order_by("id").first()
    return {
        "working": working,
        "suspended": suspended,
        "last_week": last_week,
        "expired": expired,
        "old": old,
    }


def _select(html: str) -> str:
    return re.search(r'<select name="key".*?</select>', html, re.S)[0]


@pytest.mark.parametrize("page", PAGES)
def test_the_key_filter_lists_the_working_and_lately_ended_keys_not_every_rotated_one(
    signed_in, project, rotated, page
):
    response = signed_in.get(reverse(page, args=[project.slug]))
    assert response.status_code == 200
    select = _select(response.content.decode())
    for name in ("working", "suspended", "last_week", "expired"):
        assert f'value="{rotated[name].pk}"' in select, name
    assert f'value="{rotated["old"].pk}"' not in select
    assert select.count("<option") < 20
    assert '<optgroup label="Ended">' in select
    # Working keys first, by name; the ended ones in their own group.
    working_part, ended_part = select.split('<optgroup label="Ended">')
    assert "Production" in working_part and "Staging" in working_part
    assert "Last week" in ended_part and "Expired lately" in ended_part
    assert len(response.content) < 60_000


@pytest.mark.parametrize("page", PAGES)
def test_an_old_key_chosen_by_a_link_is_offered_selected_and_filters(
    signed_in, project, rotated, page
):
    old = rotated["old"]
    response = signed_in.get(reverse(page, args=[project.slug]), {"key": old.pk})
    assert response.status_code == 200
    assert response.context["form"].cleaned_data["key"] == old
    select = _select(response.content.decode())
    assert f'<option value="{old.pk}" selected>' in select
    assert select.count("<option") < 20


@pytest.mark.parametrize("page", PAGES)
def test_another_projects_key_is_still_an_error_beside_the_filter_and_never_listed(
    signed_in, project, rotated, make_user, make_project, make_key, page
):
    theirs = make_project(make_user(email="eve@example.com"), name="Theirs")
    foreign, _ = make_key(theirs, name="Foreign")
    response = signed_in.get(reverse(page, args=[project.slug]), {"key": foreign.pk})
    html = response.content.decode()
    assert "Choose one of this project’s keys from the list." in html
    assert "Foreign" not in html
    assert f'value="{foreign.pk}"' not in _select(html)


def test_a_long_ended_key_still_tried_is_listed(signed_in, project, rotated):
    old = rotated["old"]
    ApiKey.objects.filter(pk=old.pk).update(last_refused_at=timezone.now() - timedelta(hours=1))
    html = signed_in.get(reverse("usage:project_calls", args=[project.slug])).content.decode()
    assert f'value="{old.pk}"' in _select(html)


def test_the_calls_of_an_old_key_chosen_by_a_link_are_its_own(signed_in, project, rotated):
    old, working = rotated["old"], rotated["working"]
    now = timezone.now()
    usage_write(
        [
            usage_call(now - timedelta(minutes=5), key=old, request_id="req_" + "a" * 24),
            usage_call(now - timedelta(minutes=4), key=working, request_id="req_" + "b" * 24),
        ]
    )
    response = signed_in.get(reverse("usage:project_calls", args=[project.slug]), {"key": old.pk})
    html = response.content.decode()
    assert "req_" + "a" * 24 in html
    assert "req_" + "b" * 24 not in html
