"""What the key list marks: an ended key still being tried, a key about to expire; and
what the banner leaves alone: a token made short on purpose."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import personal_token_create
from tests.conftest import usage_call
from usage.writer import usage_write


def keys_page(client, project) -> str:
    return client.get(reverse("apikeys:api_key_list", args=[project.slug])).content.decode()


def test_a_revoked_key_still_tried_is_marked_with_when_it_was_last_refused(
    signed_in, project, make_key
):
    key, _ = make_key(project, name="Leaked")
    key.revoke(by=None)
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now() - timedelta(hours=1))
    tried = timezone.now() - timedelta(minutes=3)
    usage_write(
        [
            usage_call(
                tried - timedelta(minutes=m),
                key=key,
                status=401,
                error_code="expired_api_key",
                ip="2001:db8::7" if m == 0 else "203.0.113.9",
            )
            for m in range(14)
        ]
    )
    key.refresh_from_db()
    assert key.last_refused_at == tried and key.last_used_at is None
    html = keys_page(signed_in, project)
    ended = html[html.index('id="ended-title"') :]
    assert "still tried" in ended and "refused" in ended
    # Where from, and how often since it was revoked: what an incident asks first.
    assert "from 2001:db8::7" in ended and "203.0.113.9" not in ended
    assert "14 calls after revocation" in ended


def test_an_expired_key_still_tried_counts_the_refusals_since_its_expiry_alone(
    signed_in, project, make_key
):
    """The count starts at the hour it expired: an old secret of it refused two days
    before (rolled, its overlap over) was no sign of the key being held by someone else."""
    now = timezone.now()
    key, _ = make_key(project, name="Expired")
    ApiKey.objects.filter(pk=key.pk).update(expires_at=now - timedelta(hours=2))
    refusal = {"key": key, "status": 401, "error_code": "expired_api_key"}
    usage_write([usage_call(now - timedelta(days=2), **refusal)])
    usage_write(
        [usage_call(now - timedelta(minutes=m), ip="198.51.100.4", **refusal) for m in (1, 90)]
    )
    ended = keys_page(signed_in, project).split('id="ended-title"')[1]
    assert "from 198.51.100.4" in ended and "2 calls after expiry" in ended


def test_a_key_that_was_never_tried_after_it_ended_has_no_mark(signed_in, project, make_key):
    key, _ = make_key(project, name="Quiet")
    key.revoke(by=None)
    usage_write([usage_call(timezone.now(), key=key, status=400, error_code="invalid_request")])
    assert ApiKey.objects.get(pk=key.pk).last_refused_at is None
    assert "still tried" not in keys_page(signed_in, project)


def test_an_ended_keys_last_use_says_its_time_is_utc(signed_in, project, make_key):
    """The revoked and expired keys' list gave a last use as "6 Dec 2026, 05:49", with no
    zone, beside a revocation "6 Dec 2026, 05:49 UTC" (an ended token's list says UTC)."""
    key, _ = make_key(project, name="Old laptop")
    used = timezone.now() - timedelta(hours=2)
    usage_write([usage_call(used, key=key)])
    key.revoke(by=None)
    html = keys_page(signed_in, project)
    ended = html[html.index('id="ended-title"') :]
    assert f"{used:%-d %b %Y, %H:%M} UTC" in ended


def test_a_key_expiring_within_a_week_is_marked(signed_in, project, make_key):
    soon, _ = make_key(project, name="Soon")
    later, _ = make_key(project, name="Later")
    now = timezone.now()
    ApiKey.objects.filter(pk=soon.pk).update(expires_at=now + timedelta(days=3))
    ApiKey.objects.filter(pk=later.pk).update(expires_at=now + timedelta(days=30))
    html = keys_page(signed_in, project)
    assert html.count('badge badge-warning">in 2\xa0days') == 1  # 3 days less the page's time


def test_a_token_made_for_a_week_gets_no_banner_until_its_last_day(signed_in, user, project):
    page = reverse("overview:project_overview", args=[project.slug])
    pat, _ = personal_token_create(
        user=user, name="Week", projects=[project], expires_at=timezone.now() + timedelta(days=7)
    )
    assert "expires" not in signed_in.get(page).content.decode().split("<main", 1)[1][:600]
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        expires_at=timezone.now() + timedelta(hours=20)
    )
    assert (
        "Your personal access token “<bdi>Week</bdi>” expires"
        in signed_in.get(page).content.decode()
    )


def test_a_long_lived_token_is_announced_in_its_last_week(signed_in, user, project):
    page = reverse("overview:project_overview", args=[project.slug])
    pat, _ = personal_token_create(
        user=user, name="Year", projects=[project], expires_at=timezone.now() + timedelta(days=5)
    )
    PersonalAccessToken.objects.filter(pk=pat.pk).update(
        created_at=timezone.now() - timedelta(days=300)
    )
    assert (
        "Your personal access token “<bdi>Year</bdi>” expires"
        in signed_in.get(page).content.decode()
    )


def test_a_key_carries_notes_from_creation_and_they_can_be_edited(signed_in, project):
    from tests.conftest import HTMX

    create = reverse("apikeys:api_key_create", args=[project.slug])
    form = signed_in.get(create, headers=HTMX)
    signed_in.post(
        create,
        {
            "name": "Billing",
            "notes": "Lives in Vault at billing/prod.\n<b>Ask</b> Lin.",
            "access": "full",
            "expiry": "never",
            "form_id": form.context["form_id"],
        },
        headers=HTMX,
    )
    key = ApiKey.objects.get(name="Billing")
    assert key.notes == "Lives in Vault at billing/prod.\n<b>Ask</b> Lin."
    html = keys_page(signed_in, project)
    assert "Lives in Vault at billing/prod.<br>&lt;b&gt;Ask&lt;/b&gt; Lin." in html
    rename = reverse("apikeys:api_key_rename", args=[project.slug, key.pk])
    signed_in.post(rename, {"name": "Billing", "notes": "Rotated monthly."})
    assert ApiKey.objects.get(pk=key.pk).notes == "Rotated monthly."


def test_notes_that_are_too_long_or_hold_a_nul_are_refused_beside_the_field(
    signed_in, project, make_key
):
    key, _ = make_key(project, name="Billing")
    rename = reverse("apikeys:api_key_rename", args=[project.slug, key.pk])
    for bad in ("x" * 501, "a\x00b"):
        response = signed_in.post(rename, {"name": "Billing", "notes": bad})
        assert response.status_code == 422
        assert 'id="id_notes_error"' in response.content.decode()
    assert ApiKey.objects.get(pk=key.pk).notes == ""


def test_the_key_list_searches_names_notes_and_the_start_of_a_key(signed_in, project, make_key):
    billing, _ = make_key(project, name="Billing")
    ApiKey.objects.filter(pk=billing.pk).update(notes="Stored in Vault")
    other, _ = make_key(project, name="Search indexer")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    for q, expected in (("bill", billing), ("vault", billing), ("indexer", other)):
        context = signed_in.get(url, {"q": q}).context
        assert [k.pk for k in context["active_keys"]] == [expected.pk], q
    prefix = other.hint.split("…")[0]
    assert [k.pk for k in signed_in.get(url, {"q": prefix}).context["active_keys"]] == [other.pk]


def test_odd_searches_answer_without_error(signed_in, project, make_key):
    make_key(project, name="Billing")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    for odd in ("a\x00b", "²", "x" * 5000, "%", "_"):
        response = signed_in.get(url, {"q": odd})
        assert response.status_code == 200
        assert response.context["q"] == " ".join(odd.replace("\x00", "").split())[:100]
    # A lone surrogate, as raw bytes in the query string.
    assert signed_in.get(url + "?q=%ED%A0%80").status_code == 200


def test_a_whole_secret_pasted_into_search_is_not_searched_nor_kept(signed_in, project, make_key):
    from tests.conftest import HTMX

    _, secret = make_key(project, name="Billing")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    response = signed_in.get(url, {"q": secret}, headers={**HTMX, "HX-Target": "key-table"})
    # Not swapped in: the browser opens the bare list, which says why.
    assert response["HX-Redirect"] == url and secret not in response.content.decode()
    html = signed_in.get(url).content.decode()
    assert secret not in html and "it was not searched for" in html


def test_the_visible_end_of_a_key_finds_that_key_only(signed_in, project, make_key):
    one, _ = make_key(project, name="One")
    make_key(project, name="Two")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    end = "…" + one.hint.split("…")[1]
    assert [k.pk for k in signed_in.get(url, {"q": end}).context["active_keys"]] == [one.pk]


def test_a_key_is_found_by_its_last_characters_or_its_hint_typed_with_three_dots(
    signed_in, project, make_key
):
    # What someone told of a leak has: the key's last characters, or its hint as the list
    # shows it, typed on a keyboard without an ellipsis.
    one, _ = make_key(project, name="One")
    make_key(project, name="Two")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    start, end = one.hint.split("…")
    for q in (end, f"{start}...{end}", f"{start}..{end}"):
        assert [k.pk for k in signed_in.get(url, {"q": q}).context["active_keys"]] == [one.pk], q


def test_a_hint_typed_with_its_start_and_its_end_finds_the_key_with_both(
    signed_in, project, make_key
):
    # Both halves name one key: the prefix alone and a dotted end ("reminix_sk_...VySb",
    # as someone told of a leak writes it) listed every key that starts with the prefix.
    one, _ = make_key(project, name="One")
    two, _ = make_key(project, name="Two")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    start, end = one.hint.split("…")
    typed = (f"reminix_sk_...{end}", f"reminix_sk_…{end}", f"{start}...{end}")
    for q in (*typed, f"{start.removeprefix('reminix_sk_')}...{end}"):
        assert [k.pk for k in signed_in.get(url, {"q": q}).context["active_keys"]] == [one.pk], q
    # One key's start and another's end are no key's hint.
    other_end = two.hint.split("…")[1]
    if other_end.lower() != end.lower():
        q = f"{start}...{other_end}"
        assert [k.pk for k in signed_in.get(url, {"q": q}).context["active_keys"]] == [], q


def test_a_rolled_keys_old_secret_finds_the_key(signed_in, user, project, make_key):
    from apikeys.services import api_key_roll

    rolled, _ = make_key(project, name="Rolled")
    make_key(project, name="Other")
    old_hint = rolled.hint
    api_key_roll(api_key=rolled, by=user, overlap=timedelta(0))
    url = reverse("apikeys:api_key_list", args=[project.slug])
    for q in (old_hint, old_hint.split("…")[0], old_hint.split("…")[1]):
        assert [k.pk for k in signed_in.get(url, {"q": q}).context["active_keys"]] == [rolled.pk], q


def test_a_secret_pasted_without_javascript_leaves_the_address_bar(signed_in, project, make_key):
    _, secret = make_key(project, name="Billing")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    for pasted in (secret, secret[:25], secret[:11] + " " + secret[11:]):
        answer = signed_in.get(url, {"q": pasted})
        assert answer.status_code == 303 and answer["Location"] == url, pasted


def test_a_member_who_pasted_a_secret_is_sent_to_the_lookup_too(
    client, project, make_key, make_user
):
    """Found a token? is on every member's Alerts page (a member may revoke keys): the
    banner links a member there as it does an owner."""
    from accounts.models import Membership

    _, secret = make_key(project, name="Billing")
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    url = reverse("apikeys:api_key_list", args=[project.slug])
    html = client.get(url, {"q": secret}, follow=True).content.decode()
    assert "it was not searched for" in html
    assert reverse("alerts:flag_list", args=[project.slug]) + "#token-lookup" in html


def test_a_disguised_secret_pasted_into_search_is_not_kept_either(signed_in, project, make_key):
    """A token copied from a chat with zero-width spaces in it, or from a document in
    fullwidth letters, works as the plain one: it is not searched for nor kept either."""
    _, secret = make_key(project, name="Billing")
    url = reverse("apikeys:api_key_list", args=[project.slug])
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in secret)
    zero_width = secret[:14] + "\u200b" + secret[14:]
    for pasted in (fullwidth, zero_width):
        answer = signed_in.get(url, {"q": pasted})
        assert answer.status_code == 303 and answer["Location"] == url, pasted


def test_a_rolled_keys_old_secret_refused_is_no_still_tried_mark(project, make_key):
    key, _ = make_key(project, name="Rolled")
    usage_write([usage_call(timezone.now(), key=key, status=401, error_code="expired_api_key")])
    assert ApiKey.objects.get(pk=key.pk).last_refused_at is None  # the key still works


def test_a_key_revoked_after_it_expired_counts_its_refusals_as_after_expiry(
    signed_in, project, make_key
):
    """Found in review: the count starts at the earlier end, its expiry, but said "after
    revocation" for any key revoked since, the refusals of the days between included."""
    now = timezone.now()
    key, _ = make_key(project, name="Expired, then revoked")
    ApiKey.objects.filter(pk=key.pk).update(
        expires_at=now - timedelta(days=2), revoked_at=now - timedelta(hours=2)
    )
    refusal = {"key": key, "status": 401, "error_code": "expired_api_key"}
    usage_write([usage_call(now - timedelta(days=1, minutes=m), **refusal) for m in (1, 2)])
    usage_write([usage_call(now - timedelta(minutes=1), ip="198.51.100.4", **refusal)])
    ended = keys_page(signed_in, project).split('id="ended-title"')[1]
    assert "3 calls after expiry" in ended and "after revocation" not in ended
    usage = signed_in.get(reverse("usage:api_key_usage", args=[project.slug, key.pk]))
    assert "3 calls after expiry" in usage.content.decode()
