"""The key list's order and pages: every key is on exactly one page, in the order chosen,
and the table reloads (after a rename or a revoke) on the page and order it showed."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.views.api_keys import PAGE_SIZE
from tests.conftest import HTMX


def url_of(project) -> str:
    return reverse("apikeys:api_key_list", args=[project.slug])


def ids(response, which: str = "active_keys") -> list[int]:
    return [key.pk for key in response.context[which]]


@pytest.fixture
def many_keys(project, make_key) -> list[ApiKey]:
    keys = [make_key(project, name=f"Key {n:02d}")[0] for n in range(PAGE_SIZE + 5)]
    # Created a minute apart, oldest first, so "newest" has one right answer.
    start = timezone.now() - timedelta(days=1)
    for n, key in enumerate(keys):
        ApiKey.objects.filter(pk=key.pk).update(created_at=start + timedelta(minutes=n))
    return keys


def test_pages_hold_every_key_once_newest_first(signed_in, project, many_keys):
    first = signed_in.get(url_of(project))
    second = signed_in.get(url_of(project), {"page": 2})
    assert len(ids(first)) == PAGE_SIZE and len(ids(second)) == 5
    assert ids(first) + ids(second) == [k.pk for k in reversed(many_keys)]
    html = first.content.decode()
    assert f"1–{PAGE_SIZE} of {PAGE_SIZE + 5} active keys" in html
    assert 'href="?page=2"' in html


def test_each_order_sorts_the_whole_list_before_it_is_paged(signed_in, project, many_keys):
    now = timezone.now()
    # Only two keys were ever used; the rest sort after them.
    ApiKey.objects.filter(pk=many_keys[3].pk).update(last_used_at=now - timedelta(hours=2))
    ApiKey.objects.filter(pk=many_keys[20].pk).update(last_used_at=now - timedelta(minutes=1))
    ApiKey.objects.filter(pk=many_keys[7].pk).update(expires_at=now + timedelta(days=2))
    ApiKey.objects.filter(pk=many_keys[1].pk).update(name="aardvark")  # lower case sorts first

    def order(sort: str) -> list[int]:
        return ids(signed_in.get(url_of(project), {"sort": sort})) + ids(
            signed_in.get(url_of(project), {"sort": sort, "page": 2})
        )

    assert order("oldest") == [k.pk for k in many_keys]
    assert order("name")[:2] == [many_keys[1].pk, many_keys[0].pk]
    assert order("last_used")[:2] == [many_keys[20].pk, many_keys[3].pk]
    assert order("expires")[0] == many_keys[7].pk
    assert sorted(order("last_used")) == sorted(k.pk for k in many_keys)


def test_the_pager_and_the_reload_keep_the_search_and_the_order(signed_in, project, many_keys):
    response = signed_in.get(url_of(project), {"q": "key", "sort": "name", "page": 2})
    html = response.content.decode()
    assert 'href="?q=key&amp;sort=name"' in html  # previous: page 1 is the default
    # The table reloads itself after a change on the page and order it is showing.
    assert f'hx-get="{url_of(project)}?q=key&amp;sort=name&amp;page=2"' in html
    fragment = signed_in.get(
        url_of(project), {"sort": "name", "page": 2}, headers={**HTMX, "HX-Target": "key-table"}
    )
    assert fragment.content.decode().lstrip().startswith('<div id="key-table"')
    assert ids(fragment) == [k.pk for k in many_keys[PAGE_SIZE:]]


def test_odd_orders_and_pages_answer_the_nearest_page(signed_in, project, many_keys):
    for params in (
        {"page": "²"},
        {"page": "-1"},
        {"page": "9" * 5000},
        {"page": "1\x00"},
        {"sort": "created_at; drop table"},
        {"sort": "\x00"},
        {"ended_page": "NaN"},
    ):
        response = signed_in.get(url_of(project), params)
        assert response.status_code == 200, params
        assert len(ids(response)) in (PAGE_SIZE, 5), params
    assert signed_in.get(url_of(project), {"sort": "bogus"}).context["sort"] == "newest"
    # Past the end: the last page, not an empty one.
    assert len(ids(signed_in.get(url_of(project), {"page": 99}))) == 5


def test_ended_keys_have_pages_of_their_own(signed_in, project, many_keys, user):
    ApiKey.objects.filter(pk__in=[k.pk for k in many_keys[: PAGE_SIZE + 1]]).update(
        revoked_at=timezone.now()
    )
    response = signed_in.get(url_of(project))
    assert len(ids(response)) == 4
    assert len(ids(response, "ended_keys")) == PAGE_SIZE
    later = signed_in.get(url_of(project), {"ended_page": 2})
    assert len(ids(later, "ended_keys")) == 1 and len(ids(later)) == 4
    assert f"1–{PAGE_SIZE} of {PAGE_SIZE + 1} revoked and expired keys" in response.content.decode()


def test_a_short_list_has_no_pager(signed_in, project, make_key):
    make_key(project, name="Only")
    assert 'class="pager"' not in signed_in.get(url_of(project)).content.decode()
