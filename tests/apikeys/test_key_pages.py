"""Settings → API Keys: create, show once, rename, revoke, audit, and isolation."""

import datetime
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project
from apikeys.models import ApiKey
from apikeys.tokens import token_hash
from audit.models import AuditEvent
from tests.conftest import HTMX

TOKEN = re.compile(r"reminix_sk_[0-9A-Za-z]{36}")


def create_url(project):
    return reverse("apikeys:api_key_create", args=[project.slug])


def list_url(project):
    return reverse("apikeys:api_key_list", args=[project.slug])


def create(client, project, *, headers=None, follow=False, **fields):
    data = {"name": "Production", "access": "full", "expiry": "never", "form_id": "form-1"}
    data.update(fields)
    return client.post(create_url(project), data, headers=headers or {}, follow=follow)


def test_creating_a_key_shows_it_once_with_no_store_and_stores_only_its_hash(signed_in, project):
    response = create(signed_in, project)
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    tokens = set(TOKEN.findall(response.content.decode()))
    assert len(tokens) == 1
    token = tokens.pop()
    key = ApiKey.objects.get(project=project)
    assert key.token_hash == token_hash(token)
    assert token not in str(ApiKey.objects.filter(pk=key.pk).values().get())
    assert key.hint == f"reminix_sk_{token[11:15]}…{token[-4:]}"
    assert key.permissions == ["agents", "read", "write"]

    page = signed_in.get(list_url(project)).content.decode()
    assert key.hint in page
    assert token not in page


def test_the_same_create_form_submitted_twice_makes_one_key_and_never_reshows_it(
    signed_in, project
):
    first = create(signed_in, project, form_id="once")
    token = TOKEN.search(first.content.decode()).group(0)
    again = create(signed_in, project, form_id="once", follow=True)
    assert ApiKey.objects.filter(project=project).count() == 1
    assert token not in again.content.decode()
    assert "This form was already sent: it created the key “Production”" in again.content.decode()


def test_a_form_id_no_form_of_ours_sent_is_not_kept_in_the_session(signed_in, project):
    huge = "x" * 100_000
    assert create(signed_in, project, name="One", form_id=huge).status_code == 201
    assert huge not in signed_in.session.get("secret_forms_used", [])
    assert create(signed_in, project, name="Two", form_id=huge).status_code == 201


def test_a_restricted_key_keeps_only_the_chosen_permissions(signed_in, project):
    create(signed_in, project, access="restricted", permissions=["read"])
    assert ApiKey.objects.get(project=project).permissions == ["read"]


def test_form_errors_stand_beside_their_fields_and_create_nothing(signed_in, project):
    response = create(
        signed_in, project, name="  ", access="restricted", expiry="date", expires_on="2001-01-01"
    )
    assert response.status_code == 422
    html = response.content.decode()
    for field in ("name", "permissions", "expires_on"):
        assert f'id="id_{field}_error"' in html, field
    assert "Pick a date after today." in html
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(("expiry", "days"), [("7", 7), ("30", 30), ("90", 90)])
def test_an_expiry_in_days_is_set_from_now(signed_in, project, expiry, days):
    create(signed_in, project, expiry=expiry)
    expires_at = ApiKey.objects.get(project=project).expires_at
    expected = timezone.now() + datetime.timedelta(days=days)
    assert abs((expires_at - expected).total_seconds()) < 60


def test_an_expiry_on_a_date_starts_that_day_in_utc(signed_in, project):
    day = timezone.now().date() + datetime.timedelta(days=10)
    create(signed_in, project, expiry="date", expires_on=day.isoformat())
    expires_at = ApiKey.objects.get(project=project).expires_at
    assert expires_at == datetime.datetime.combine(day, datetime.time.min, tzinfo=datetime.UTC)


def test_htmx_creation_answers_the_fragment_and_tells_the_table_to_reload(signed_in, project):
    response = create(signed_in, project, headers=HTMX)
    assert response.status_code == 201
    assert "apiKeysChanged" in json.loads(response["HX-Trigger"])
    html = response.content.decode()
    assert 'id="key-panel"' in html
    assert "<html" not in html


def test_an_htmx_history_restore_of_a_dialogs_address_gets_the_whole_page(signed_in, project):
    """When htmx's history cache misses it asks for the address again (HX-Request with
    HX-History-Restore-Request) and puts the answer in place of the whole body: a dialog's
    address must then answer the page with the dialog open, not the dialog alone."""
    response = signed_in.get(
        reverse("apikeys:api_key_create", args=[project.slug]),
        headers={**HTMX, "HX-History-Restore-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" in html and 'id="key-table"' in html and 'id="key-panel"' in html


def test_the_key_table_fragment_reloads_on_its_own(signed_in, project, make_key):
    make_key(project, name="CI")
    response = signed_in.get(list_url(project), headers={**HTMX, "HX-Target": "key-table"})
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="key-table"')
    assert "CI" in html


def test_creating_renaming_and_revoking_each_write_an_audit_event(signed_in, project, user):
    create(signed_in, project, name="Old name")
    key = ApiKey.objects.get(project=project)
    signed_in.post(reverse("apikeys:api_key_rename", args=[project.slug, key.pk]), {"name": "New"})
    signed_in.post(reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]))
    events = AuditEvent.objects.filter(project=project, target_type="apikey").order_by("id")
    assert [e.action for e in events] == ["api_key.created", "api_key.renamed", "api_key.revoked"]
    assert all(e.actor == user and e.ip_address == "127.0.0.1" for e in events)
    assert events[1].metadata == {"from": "Old name", "to": "New"}


def test_revoke_asks_first_naming_the_key_then_revokes_for_good(signed_in, project, make_key, user):
    key, _ = make_key(project, name="Billing worker")
    url = reverse("apikeys:api_key_revoke", args=[project.slug, key.pk])
    confirm = signed_in.get(url).content.decode()
    assert "Revoke “<bdi>Billing worker</bdi>”?" in confirm
    assert "cannot be undone" in confirm
    key.refresh_from_db()
    assert key.revoked_at is None

    signed_in.post(url)
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_by == user
    revoked_at = key.revoked_at
    signed_in.post(url)
    key.refresh_from_db()
    assert key.revoked_at == revoked_at


def test_the_revocations_message_says_the_keys_client_tokens_ended_with_it(
    signed_in, project, make_key
):
    """Whoever revoked a leaked key asks next whether what was minted with it still works:
    the message says, as the dialog did before."""
    key, _ = make_key(project, name="Mobile BFF")
    url = reverse("apikeys:api_key_revoke", args=[project.slug, key.pk])
    page = signed_in.post(url, follow=True).content.decode()
    assert "is revoked. Calls with it and with the client tokens it minted now get 401" in page


def test_an_expired_key_offers_no_revoke_that_would_change_nothing(signed_in, project, make_key):
    """An expired key refuses every call for good (401 expired_api_key, as a revoked one
    does) and is never rolled, resumed or renamed again: revoking it stops nothing. The
    ended keys' list offered Revoke beside it all the same, its panel asked to confirm that
    calls 'will fail from the moment you confirm', and the answer said they 'now get 401'.
    As GitHub shows an expired token, the row keeps what still helps (its usage, to trace
    what it was used for); a panel opened from a list shown before it expired says that it
    ended, and a revocation sent from one records nothing and says why."""
    lapsed, _ = make_key(
        project, name="Lapsed", expires_at=timezone.now() - datetime.timedelta(days=1)
    )
    url = reverse("apikeys:api_key_revoke", args=[project.slug, lapsed.pk])
    html = signed_in.get(list_url(project)).content.decode()
    row = re.search(rf'<tr id="key-{lapsed.pk}".*?</tr>', html, re.S)
    assert row is not None
    assert f'href="{url}"' not in row.group() and "Revoke" not in row.group()
    assert reverse("usage:api_key_usage", args=[project.slug, lapsed.pk]) in row.group()

    for headers in ({}, {**HTMX, "HX-Target": "key-panel"}):
        panel = signed_in.get(url, headers=headers).content.decode()
        assert "“Lapsed” expired on" in panel
        assert f'action="{url}"' not in panel and f'hx-post="{url}"' not in panel

    answer = signed_in.post(url, follow=True).content.decode()
    lapsed.refresh_from_db()
    assert lapsed.revoked_at is None
    assert not AuditEvent.objects.filter(action="api_key.revoked").exists()
    assert "“Lapsed” expired on" in answer and "is revoked" not in answer


def test_a_revoked_keys_row_says_where_it_was_last_used_from(signed_in, project, make_key, user):
    """The ended keys are kept "to trace what a leaked key was used for": their row names
    the address of the last call that succeeded, as a working key's row does."""
    from apikeys.services import api_key_revoke
    from tests.conftest import usage_call
    from usage.writer import usage_write

    key, _ = make_key(project, name="Leaked")
    usage_write(
        [usage_call(timezone.now() - datetime.timedelta(minutes=5), key=key, ip="45.83.64.17")]
    )
    api_key_revoke(api_key=key, by=user)
    html = signed_in.get(reverse("apikeys:api_key_list", args=[project.slug])).content.decode()
    row = html.split(f'id="key-{key.pk}"')[1].split("</tr>")[0]
    assert row.startswith(' class="row-ended"') and "from 45.83.64.17" in row


def test_revoked_and_expired_keys_stay_listed_apart(signed_in, project, make_key):
    make_key(project, name="Live")
    revoked, _ = make_key(project, name="Gone")
    revoked.revoke(by=None)
    make_key(project, name="Lapsed", expires_at=timezone.now() - datetime.timedelta(days=1))
    html = signed_in.get(list_url(project)).content.decode()
    active, _, ended = html.partition("Revoked and expired keys")
    assert "Live" in active and "Gone" not in active and "Lapsed" not in active
    assert "revoked" in ended and "expired" in ended


def test_rename_errors_stand_beside_the_field(signed_in, project, make_key):
    key, _ = make_key(project, name="Keep")
    response = signed_in.post(
        reverse("apikeys:api_key_rename", args=[project.slug, key.pk]), {"name": ""}
    )
    assert response.status_code == 422
    assert 'id="id_name_error"' in response.content.decode()
    key.refresh_from_db()
    assert key.name == "Keep"


@pytest.mark.parametrize("headers", [{}, HTMX], ids=["plain form", "htmx"])
def test_a_revoked_key_is_not_renamed_and_its_rename_page_says_why(
    signed_in, project, make_key, headers
):
    """As its roll and suspend pages do: a list shown before the revocation still offers
    Rename, and the form renamed the ended key (and recorded it) as if it were working."""
    key, _ = make_key(project, name="Keep")
    key.revoke(by=None)
    url = reverse("apikeys:api_key_rename", args=[project.slug, key.pk])
    asked = signed_in.get(url, headers=headers).content.decode()
    assert "was revoked on" in asked and "cannot be renamed" in asked
    assert 'name="name"' not in asked
    sent = signed_in.post(url, {"name": "Renamed", "notes": ""}, headers=headers)
    assert sent.status_code == 409
    assert "cannot be renamed" in sent.content.decode()
    key.refresh_from_db()
    assert key.name == "Keep"
    assert not AuditEvent.objects.filter(action="api_key.renamed").exists()


def test_an_htmx_rename_of_a_key_revoked_meanwhile_shows_why_and_refreshes_the_list(
    signed_in, project, make_key
):
    """The dialog was opened while the key worked: its Save gets the ended panel in place
    of the stale form, and the list behind it reloads to show the key as revoked."""
    key, _ = make_key(project, name="Keep")
    url = reverse("apikeys:api_key_rename", args=[project.slug, key.pk])
    assert 'name="name"' in signed_in.get(url, headers=HTMX).content.decode()
    key.revoke(by=None)
    sent = signed_in.post(url, {"name": "Renamed", "notes": ""}, headers=HTMX)
    assert sent.status_code == 409
    assert 'id="key-panel"' in sent.content.decode()
    assert "cannot be renamed" in sent.content.decode()
    assert "apiKeysChanged" in sent.headers.get("HX-Trigger", "")


def test_the_rename_service_refuses_a_key_revoked_since_the_caller_read_it(project, make_key, user):
    from apikeys.services import KeyEnded, api_key_rename

    key, _ = make_key(project, name="Keep")
    stale = ApiKey.objects.get(pk=key.pk)
    key.revoke(by=None)
    with pytest.raises(KeyEnded, match="was revoked on"):
        api_key_rename(api_key=stale, name="Renamed", notes="Why", by=user)
    key.refresh_from_db()
    assert (key.name, key.notes) == ("Keep", "")
    assert not AuditEvent.objects.filter(action="api_key.renamed").exists()


@pytest.mark.parametrize(
    "action", ["apikeys:api_key_rename", "apikeys:api_key_revoke", "usage:api_key_usage"]
)
def test_a_key_of_another_project_is_404_to_a_member_of_this_one(
    client, make_user, make_key, action
):
    owner = make_user(email="owner@example.com")
    their_project = Project.objects.for_user(owner).get()
    their_key, _ = make_key(their_project, name="Theirs")
    intruder = make_user(email="intruder@example.com")
    my_project = Project.objects.for_user(intruder).get()
    client.force_login(intruder)
    # Their key id under my own project's URL, and under theirs: both 404.
    for slug in (my_project.slug, their_project.slug):
        url = reverse(action, args=[slug, their_key.pk])
        for response in (client.get(url), client.post(url, {"name": "Mine"})):
            assert response.status_code in (404, 405)
            assert "Theirs" not in response.content.decode()
    their_key.refresh_from_db()
    assert their_key.name == "Theirs" and their_key.revoked_at is None


def test_a_plain_member_can_create_and_revoke_keys(client, project, make_user):
    member = make_user(email="member@example.com")
    Membership.objects.create(project=project, user=member)
    client.force_login(member)
    assert create(client, project).status_code == 201


def test_a_key_whose_creator_left_the_project_is_marked_and_still_works(
    signed_in, project, user, make_user, api
):
    """Issue 11, point 8: keys outlive their creator; the list says so."""
    from accounts.services import membership_add, membership_remove
    from apikeys.services import api_key_create

    leaver = make_user(email="leaver@example.com", name="Lou")
    membership = membership_add(project=project, user=leaver, role="member", by=user)
    theirs, token = api_key_create(project=project, name="Lou's deploys", created_by=leaver)
    mine, _ = api_key_create(project=project, name="Mine", created_by=user)

    def marked() -> set[str]:
        html = signed_in.get(list_url(project)).content.decode()
        rows = re.findall(r'<tr id="key-\d+">.*?</tr>', html, flags=re.S)
        return {
            re.search(r"<strong>(.*?)</strong>", r).group(1) for r in rows if "creator left" in r
        }

    assert marked() == set()
    membership_remove(membership=membership, by=user)
    assert marked() == {"<bdi>Lou&#x27;s deploys</bdi>"}  # isolated, as customer text
    response = api.post("/v1/agents/my-agent/invoke", {"prompt": "hi"}, token=token)
    assert response.status_code == 200  # marked, not stopped: someone decides


def test_an_owner_hands_the_keys_of_people_who_left_to_a_member(
    signed_in, project, user, make_user
):
    """Issue 11, point 8: someone answers for them again; the keys themselves go on."""
    from accounts.services import membership_add, membership_remove
    from apikeys.services import api_key_create
    from audit.models import AuditEvent

    leaver = make_user(email="leaver@example.com", name="Lou")
    stayer = make_user(email="stayer@example.com", name="Sam")
    gone = membership_add(project=project, user=leaver, role="member", by=user)
    membership_add(project=project, user=stayer, role="member", by=user)
    theirs, _ = api_key_create(project=project, name="Lou's deploys", created_by=leaver)
    membership_remove(membership=gone, by=user)

    html = signed_in.get(list_url(project)).content.decode()
    assert "1 key made by people who are no longer members" in html
    transfer = reverse("apikeys:api_keys_transfer", args=[project.slug])
    assert transfer in html

    # A plain member sees the note but may not hand keys over.
    from django.test import Client

    client = Client()
    client.force_login(stayer)
    assert transfer not in client.get(list_url(project)).content.decode()
    assert client.post(transfer, {"to": stayer.pk}).status_code == 403
    # Only a current member can receive them; odd values change nothing.
    for bad in (leaver.pk, "²", "", "1\x00"):
        signed_in.post(transfer, {"to": bad})
        theirs.refresh_from_db()
        assert theirs.created_by == leaver

    done = signed_in.post(transfer, {"to": stayer.pk}, headers=HTMX)
    assert done.status_code == 200 and "apiKeysChanged" in done["HX-Trigger"]
    theirs.refresh_from_db()
    assert theirs.created_by == stayer and theirs.revoked_at is None
    event = AuditEvent.objects.get(action="api_key.transferred")
    assert event.metadata == {"from": "leaver@example.com", "to": "stayer@example.com"}
    assert "no longer members" not in signed_in.get(list_url(project)).content.decode()


def test_a_hand_over_refused_says_why_beside_its_field(signed_in, project, user, make_user):
    """The member chosen left while the page was open (or the value was no member's): the
    refusal was a message at the top of the page, away from the select it is about, and
    with htmx the panel below the banner closed. It is said beside the select, in the page
    and in the table htmx swaps in (a 422, which the dashboard's htmx swaps)."""
    from accounts.services import membership_add, membership_remove
    from apikeys.services import api_key_create

    leaver = make_user(email="leaver@example.com", name="Lou")
    stayer = make_user(email="stayer@example.com", name="Sam")
    gone = membership_add(project=project, user=leaver, role="member", by=user)
    left_since = membership_add(project=project, user=stayer, role="member", by=user)
    api_key_create(project=project, name="Lou's deploys", created_by=leaver)
    membership_remove(membership=gone, by=user)
    membership_remove(membership=left_since, by=user)
    transfer = reverse("apikeys:api_keys_transfer", args=[project.slug])

    page = signed_in.post(transfer, {"to": stayer.pk})
    assert page.status_code == 422
    html = page.content.decode()
    form = html[html.index(f'action="{transfer}"') : html.index("Hand them over")]
    assert 'class="errorlist' in form and "Choose a current member of the project." in form
    assert 'aria-invalid="true"' in form
    assert 'class="message message-error"' not in html

    swapped = signed_in.post(transfer, {"to": "²"}, headers=HTMX)
    assert swapped.status_code == 422
    assert swapped["HX-Retarget"] == "#key-table" and swapped["HX-Reswap"] == "outerHTML"
    html = swapped.content.decode()
    assert html.lstrip().startswith('<div id="key-table"')
    assert "Choose a current member of the project." in html
    assert "apiKeysChanged" not in swapped.get("HX-Trigger", "")


def test_two_working_keys_cannot_share_a_name_whatever_its_case(signed_in, project, make_key, user):
    """Issue 13, point 5: rows that differ only by their hint. An ended key's name is free."""
    from apikeys.services import api_key_revoke

    existing, _ = make_key(project, name="Production")
    refused = create(signed_in, project, name="  production ", form_id="form-2", headers=HTMX)
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_name_error"' in html and "already called" in html
    other, _ = make_key(project, name="Staging")
    rename = reverse("apikeys:api_key_rename", args=[project.slug, other.pk])
    refused = signed_in.post(rename, {"name": "PRODUCTION"}, headers=HTMX)
    assert refused.status_code == 422 and 'id="id_name_error"' in refused.content.decode()
    # Renaming a key to its own name in another case is fine.
    assert signed_in.post(rename, {"name": "staging"}, headers=HTMX).status_code == 200
    api_key_revoke(api_key=existing, by=user)
    assert create(signed_in, project, name="Production", form_id="form-3").status_code == 201


def test_revoking_says_the_client_tokens_it_minted_stop_too(signed_in, project, make_key):
    """Suspending a key said so, and so did revoking a personal token; revoking a key,
    which ends its client tokens just the same, did not."""
    key, _ = make_key(project, name="Web")
    url = reverse("apikeys:api_key_revoke", args=[project.slug, key.pk])
    assert "and with the client tokens it minted" in signed_in.get(url).content.decode()


def test_the_keys_tab_is_written_as_its_page_and_buttons_are(signed_in, project):
    """The tab read "API Keys" above a page titled "API keys" beside "Create API key"."""
    url = reverse("apikeys:api_key_list", args=[project.slug])
    page = signed_in.get(url).content.decode()
    assert 'aria-current="page">API keys</a>' in page and "API Keys" not in page


def test_the_page_that_shows_a_new_key_without_htmx_has_one_messages_box(signed_in, project):
    """Its panel carries a copy of the messages for htmx to swap in at the top; drawn in
    a whole page as well, there were two elements with the id "messages"."""
    html = create(signed_in, project).content.decode()
    assert html.count('id="messages"') == 1
    html = create(signed_in, project, headers=HTMX, form_id="form-2", name="Other").content.decode()
    assert html.count('id="messages"') == 1 and 'hx-swap-oob="true"' in html
