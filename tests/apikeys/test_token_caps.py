"""How many working tokens a project's keys and a person's PATs may number: the last one
past the cap is refused beside the name on the forms, in the envelope on the API, and
exactly when two arrive at once. Ended tokens do not count, and their lists are read a
page at a time however many there are."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import (
    MAX_WORKING_KEYS_PER_PROJECT,
    MAX_WORKING_PATS_PER_PERSON,
    too_many_keys_message,
    too_many_pats_message,
)
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import (
    statements_run,
    the_second_waits_for_the_first,
)

CONCURRENT = "SQLite serialises all writers: concurrency is shown on PostgreSQL."


def keys(project, count: int, *, start: int = 0, **fields) -> None:
    """`count` keys of `project`, written past the services (only their number matters)."""
    ApiKey.objects.bulk_create(
        ApiKey(project=project, name=f"k{n}", token_hash=f"{n:064d}", hint=f"h{n}", **fields)
        for n in range(start, start + count)
    )


def pats(user, count: int, *, start: int = 0, **fields) -> None:
    PersonalAccessToken.objects.bulk_create(
        PersonalAccessToken(
            user=user, name=f"p{n}", token_hash=f"p{n:063d}", hint=f"h{n}", **fields
        )
        for n in range(start, start + count)
    )


def create_key(client, project):
    data = {"name": "One more", "access": "full", "expiry": "never", "form_id": "form-1"}
    return client.post(reverse("apikeys:api_key_create", args=[project.slug]), data)


def create_pat(client):
    data = {"name": "One more", "access": "full", "expiry": "30", "form_id": "f1", "reach": "all"}
    return client.post(reverse("apikeys:personal_token_create"), data)


def name_error(response) -> str:
    html = response.content.decode()
    found = re.search(r'id="id_name_error"[^>]*>(.*?)</', html, re.S)
    assert found, html[:2000]
    return found[1]


# -- API keys -------------------------------------------------------------------------------


def test_the_form_refuses_a_key_past_the_cap_beside_the_name(signed_in, project):
    keys(project, MAX_WORKING_KEYS_PER_PROJECT)
    response = create_key(signed_in, project)
    assert response.status_code == 422
    assert too_many_keys_message() in name_error(response)
    assert ApiKey.objects.filter(project=project).count() == MAX_WORKING_KEYS_PER_PROJECT


def test_revoked_and_expired_keys_do_not_count(signed_in, project):
    keys(project, MAX_WORKING_KEYS_PER_PROJECT - 1)
    keys(project, 5, start=1000, revoked_at=timezone.now())
    keys(project, 5, start=2000, expires_at=timezone.now() - timedelta(seconds=1))
    assert create_key(signed_in, project).status_code == 201


def test_the_api_refuses_a_key_past_the_cap_in_the_envelope(admin, project):
    keys(project, MAX_WORKING_KEYS_PER_PROJECT)
    error = assert_error(admin.post("/v1/api-keys", {"name": "One more"}), 400, "invalid_request")
    assert error["message"] == too_many_keys_message()


def test_the_key_cap_is_in_the_api_description(client):
    description = client.get("/v1/openapi.json").json()
    create = description["paths"]["/v1/api-keys"]["post"]
    assert f"at most {MAX_WORKING_KEYS_PER_PROJECT} working keys" in create["description"]


def test_createapikey_refuses_a_key_past_the_cap(project):
    keys(project, MAX_WORKING_KEYS_PER_PROJECT)
    with pytest.raises(CommandError, match="the most it may have"):
        call_command("createapikey", project=project.slug, name="deploy", stdout=io.StringIO())


@pytest.mark.django_db(transaction=True)
def test_two_keys_at_once_one_below_the_cap_make_one(admin, project, monkeypatch):
    """The first has counted and is about to write; the second waits for it on the
    project's row, then counts it."""
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    keys(project, MAX_WORKING_KEYS_PER_PROJECT - 1)
    answers = {}

    def create(name: str) -> None:
        answers[name] = admin.post("/v1/api-keys", {"name": name})

    second_failures = the_second_waits_for_the_first(
        monkeypatch,
        ApiKey.objects,
        "mint",
        lambda: create("first"),
        lambda: create("second"),
    )
    assert second_failures == []
    assert_ok(answers["first"], 201)
    assert_error(answers["second"], 400, "invalid_request")
    assert ApiKey.objects.for_project(project).active().count() == MAX_WORKING_KEYS_PER_PROJECT


def test_the_key_list_reads_ended_keys_one_page_at_a_time(signed_in, project):
    keys(project, 3)
    keys(project, 60, start=1000, revoked_at=timezone.now())
    url = reverse("apikeys:api_key_list", args=[project.slug])
    with statements_run() as statements:
        response = signed_in.get(url, {"ended_page": "2"})
    assert response.status_code == 200
    assert len(response.context["ended_keys"]) == 25
    assert len(response.context["active_keys"]) == 3
    assert response.context["found"] == 63
    table = ApiKey._meta.db_table
    reads = [sql for sql in statements if f'FROM "{table}"' in sql]
    whole = [
        sql
        for sql in reads
        if "LIMIT" not in sql
        and not sql.startswith("SELECT COUNT(*)")
        and '"revoked_at" IS NULL' not in sql
    ]
    assert reads and whole == []  # every read of the keys is of working ones, a page, or a count


# -- Personal access tokens -----------------------------------------------------------------


def test_the_form_refuses_a_pat_past_the_cap_beside_the_name(signed_in, user):
    pats(user, MAX_WORKING_PATS_PER_PERSON)
    response = create_pat(signed_in)
    assert response.status_code == 422
    assert too_many_pats_message() in name_error(response)
    assert PersonalAccessToken.objects.filter(user=user).count() == MAX_WORKING_PATS_PER_PERSON


def test_revoked_and_expired_pats_do_not_count(signed_in, user):
    pats(user, MAX_WORKING_PATS_PER_PERSON - 1)
    pats(user, 5, start=1000, revoked_at=timezone.now())
    pats(user, 5, start=2000, expires_at=timezone.now() - timedelta(seconds=1))
    assert create_pat(signed_in).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_two_pats_at_once_one_below_the_cap_make_one(user, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    pats(user, MAX_WORKING_PATS_PER_PERSON - 1)
    answers = {}

    def create(which: str) -> None:
        client = Client()
        client.force_login(user)
        answers[which] = create_pat(client)

    second_failures = the_second_waits_for_the_first(
        monkeypatch,
        PersonalAccessToken.objects,
        "mint",
        lambda: create("first"),
        lambda: create("second"),
    )
    assert second_failures == []
    assert answers["first"].status_code == 201
    assert answers["second"].status_code == 422
    assert too_many_pats_message() in name_error(answers["second"])
    active = PersonalAccessToken.objects.for_user(user).active().count()
    assert active == MAX_WORKING_PATS_PER_PERSON


def regenerate_pat(client, pat):
    data = {"expiry": "30", "form_id": "r1"}
    return client.post(reverse("apikeys:personal_token_regenerate", args=[pat.pk]), data)


def test_an_expired_pat_is_not_regenerated_past_the_cap(signed_in, user):
    """Regenerated, an expired token works again: it counts as one made anew would."""
    pats(user, MAX_WORKING_PATS_PER_PERSON)
    pats(user, 1, start=1000, expires_at=timezone.now() - timedelta(days=1))
    expired = PersonalAccessToken.objects.get(name="p1000")
    response = regenerate_pat(signed_in, expired)
    assert response.status_code == 422
    assert too_many_pats_message() in response.content.decode()
    assert PersonalAccessToken.objects.for_user(user).active().count() == (
        MAX_WORKING_PATS_PER_PERSON
    )
    expired.refresh_from_db()
    assert expired.hint == "h1000"


def test_a_working_pat_at_the_cap_is_still_regenerated(signed_in, user):
    pats(user, MAX_WORKING_PATS_PER_PERSON)
    assert regenerate_pat(signed_in, PersonalAccessToken.objects.get(name="p0")).status_code == 201


@pytest.mark.django_db(transaction=True)
def test_a_pat_made_while_an_expired_one_is_regenerated_one_below_the_cap_works_alone(
    user, monkeypatch
):
    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    pats(user, MAX_WORKING_PATS_PER_PERSON - 1)
    pats(user, 1, start=1000, expires_at=timezone.now() - timedelta(days=1))
    expired = PersonalAccessToken.objects.get(name="p1000")
    # Signed in beforehand: a sign-in writes the person's row, and would wait on it itself.
    clients = {which: Client() for which in ("made", "regenerated")}
    for client in clients.values():
        client.force_login(user)
    answers = {}

    def send(which: str, request) -> None:
        answers[which] = request(clients[which])

    second_failures = the_second_waits_for_the_first(
        monkeypatch,
        PersonalAccessToken.objects,
        "mint",
        lambda: send("made", create_pat),
        lambda: send("regenerated", lambda client: regenerate_pat(client, expired)),
    )
    assert second_failures == []
    assert answers["made"].status_code == 201
    assert answers["regenerated"].status_code == 422
    assert too_many_pats_message() in answers["regenerated"].content.decode()
    active = PersonalAccessToken.objects.for_user(user).active().count()
    assert active == MAX_WORKING_PATS_PER_PERSON


def test_the_pat_list_shows_the_newest_ended_tokens_and_how_many_more(signed_in, user):
    pats(user, 2)
    pats(user, 53, start=1000, revoked_at=timezone.now())
    response = signed_in.get(reverse("apikeys:personal_token_list"))
    assert len(response.context["active_tokens"]) == 2
    assert len(response.context["ended_tokens"]) == 50
    assert "And 3 older revoked or expired tokens, not shown." in response.content.decode()


@pytest.mark.parametrize(
    "number", ["²", "-1", "0", "9" * 5000, "\x00", "1e400", str(2**63), "3", "99999999999999"]
)
def test_any_ended_page_number_is_answered_with_a_page(signed_in, project, number):
    keys(project, 60, revoked_at=timezone.now())
    url = reverse("apikeys:api_key_list", args=[project.slug])
    response = signed_in.get(url, {"ended_page": number, "page": number})
    assert response.status_code == 200
    assert 1 <= len(response.context["ended_keys"]) <= 25
