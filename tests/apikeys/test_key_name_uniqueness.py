"""Two working keys of a project never share a name, whatever its case: the database holds
the rule (the constraint `apikey_unique_working_name`), not only the forms. A create or a
rename that loses a race to the name gets the error a form gives, beside its field, and
leaves nothing behind; keys that shared a name before the constraint are told apart by the
upgrade."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apikeys.models import ApiKey
from apikeys.services import (
    KeyNameTaken,
    api_key_create,
    api_key_rename,
    api_key_revoke,
    api_key_suspend,
    personal_token_create,
)
from audit.models import AuditEvent
from tests.api.assertions import assert_error
from tests.conftest import HTMX, Api, held_back_until_both_are_ready, run_together
from tests.migration_state import migrated_back, migrated_to_the_end

TOKEN = re.compile(r"reminix_sk_[0-9A-Za-z]{36}")
BEFORE_THE_CONSTRAINT = ("apikeys", "0024_backfill_pat_regenerated_at")
CONCURRENT = "SQLite serialises all writers: concurrency is shown on PostgreSQL."


def create(client, project, *, headers=None, **fields):
    data = {"name": "Production", "access": "full", "expiry": "never", "form_id": "form-1"}
    data.update(fields)
    url = reverse("apikeys:api_key_create", args=[project.slug])
    return client.post(url, data, headers=headers or {})


def rename_url(project, key):
    return reverse("apikeys:api_key_rename", args=[project.slug, key.pk])


def raw_key(project, name: str, n: int) -> ApiKey:
    """A row written past the services: what only the database can refuse."""
    return ApiKey.objects.create(project=project, name=name, token_hash=f"{n:064d}", hint="h")


def working_named(project, name: str) -> int:
    return ApiKey.objects.for_project(project).active().filter(name__iexact=name).count()


def test_the_database_refuses_a_second_working_key_of_one_name_and_frees_ended_ones(
    project, make_key, make_project, user
):
    """The rule of the forms (apikeys/forms/api_keys.py, _unique_key_name): a working key's
    name is taken whatever its case, also while the key is suspended; a revoked or expired
    key's name may be used again; another project's keys are no matter."""
    production, _ = make_key(project, name="Production")
    for n, name in enumerate(["Production", "PRODUCTION"]):
        with pytest.raises(IntegrityError), transaction.atomic():
            raw_key(project, name, n)
    api_key_suspend(api_key=production, by=user, reason="Under review")
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_key(project, "production", 2)
    raw_key(make_project(user), "Production", 3)
    api_key_revoke(api_key=production, by=user)
    raw_key(project, "production", 4).revoke(by=user)

    # An expiry is a moment, not a write the database sees: a create or a rename that takes
    # an expired key's name frees it in the same transaction.
    nightly, _ = make_key(project, name="Nightly")
    ApiKey.objects.filter(pk=nightly.pk).update(expires_at=timezone.now() - timedelta(days=1))
    again, _ = make_key(project, name="nightly")
    ApiKey.objects.filter(pk=again.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    staging, _ = make_key(project, name="Staging")
    api_key_rename(api_key=staging, name="NIGHTLY", by=user)
    assert working_named(project, "nightly") == 1
    assert ApiKey.objects.filter(name__iexact="nightly").count() == 3


def the_check_misses_it(monkeypatch, module) -> None:
    """The form's or the endpoint's check looks before the other request's key is there
    (committed after the check, before this request's insert): only the database can
    refuse the name now."""
    monkeypatch.setattr(module, "key_name_taken", lambda *args, **kwargs: False)


def test_a_create_form_that_loses_its_name_to_another_tab_shows_the_error_beside_the_field(
    signed_in, project, make_key, monkeypatch
):
    import apikeys.forms.api_keys

    make_key(project, name="Production")
    the_check_misses_it(monkeypatch, apikeys.forms.api_keys)
    refused = create(signed_in, project, name=" production", headers=HTMX)
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_name_error"' in html and "already called “production”" in html
    assert 'name="form_id" value="form-1"' in html  # the same form, sent again once fixed
    assert TOKEN.search(html) is None
    assert ApiKey.objects.filter(project=project).count() == 1
    assert AuditEvent.objects.filter(action="api_key.created").count() == 1


def test_a_rename_form_that_loses_its_name_to_a_new_key_shows_the_error_beside_the_field(
    signed_in, project, make_key, monkeypatch
):
    import apikeys.forms.api_keys

    make_key(project, name="Production")
    staging, _ = make_key(project, name="Staging")
    the_check_misses_it(monkeypatch, apikeys.forms.api_keys)
    refused = signed_in.post(
        rename_url(project, staging), {"name": "PRODUCTION", "notes": "moved"}, headers=HTMX
    )
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_name_error"' in html and "already called" in html
    staging.refresh_from_db()
    assert (staging.name, staging.notes) == ("Staging", "")
    assert not AuditEvent.objects.filter(action="api_key.renamed").exists()


def test_createapikey_refuses_the_name_of_a_working_key_with_a_clear_message(project, make_key):
    from io import StringIO

    from django.core.management import CommandError, call_command

    make_key(project, name="Deploy")
    out = StringIO()
    with pytest.raises(CommandError, match="already called"):
        call_command("createapikey", project=project.slug, name="deploy", stdout=out)
    assert out.getvalue() == ""
    assert ApiKey.objects.filter(project=project).count() == 1


@pytest.mark.django_db(transaction=True)
def test_one_name_sent_from_two_browsers_at_once_makes_one_key(project, user, monkeypatch):
    """Both past the form's check of the name before either writes: the unique index
    decides. (Two tabs of one browser take turns on their session's row, core.shown_once:
    the second tab's form finds the name taken by its own check.)"""
    from apikeys.views import api_keys as views

    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    first = Client()
    first.force_login(user)
    second = Client()
    second.force_login(user)  # another browser, its own session
    held_back_until_both_are_ready(monkeypatch, (views, "api_key_create"))
    responses = []
    run_together(
        *(
            lambda client=client, tab=tab: responses.append(
                create(client, project, form_id=f"tab-{tab}", headers=HTMX)
            )
            for tab, client in enumerate((first, second))
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 422]
    html = next(r for r in responses if r.status_code == 422).content.decode()
    assert 'id="id_name_error"' in html and "already called" in html
    assert TOKEN.search(html) is None
    assert ApiKey.objects.filter(project=project).count() == 1
    assert AuditEvent.objects.filter(action="api_key.created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_rename_and_a_create_to_one_name_at_once_leave_one_working_key_with_it(
    project, user, make_key, monkeypatch
):
    """A page renames a key to a name while automation creates a key with it: one wins,
    the other gets its surface's ordinary error."""
    import api.api_keys
    from apikeys.views import api_keys as views

    if connection.vendor != "postgresql":
        pytest.skip(CONCURRENT)
    staging, _ = make_key(project, name="Staging")
    _, secret = personal_token_create(user=user, name="Keys", permissions=["agents", "keys"])
    automation = Api(Client(), secret)
    page = Client()
    page.force_login(user)
    held_back_until_both_are_ready(
        monkeypatch, (views, "api_key_rename"), (api.api_keys, "api_key_create")
    )
    answers = {}
    run_together(
        lambda: answers.update(
            renamed=page.post(rename_url(project, staging), {"name": "production"}, headers=HTMX)
        ),
        lambda: answers.update(
            created=automation.post(
                "/v1/api-keys", {"name": "Production"}, headers={"X-Project": project.slug}
            )
        ),
    )
    renamed, created = answers["renamed"], answers["created"]
    assert sorted([renamed.status_code, created.status_code]) in ([200, 400], [201, 422])
    if renamed.status_code == 422:
        html = renamed.content.decode()
        assert 'id="id_name_error"' in html and "already called" in html
    else:
        error = assert_error(created, 400, "invalid_field_value")
        assert "name" in error["message"] and "working key" in error["message"]
    assert working_named(project, "production") == 1
    changes = AuditEvent.objects.filter(action__in=["api_key.renamed", "api_key.created"])
    assert changes.exclude(target_id=str(staging.pk), action="api_key.created").count() == 1


@pytest.mark.django_db(transaction=True)
def test_keys_that_shared_a_name_before_the_constraint_are_told_apart_by_the_upgrade():
    """apikeys/0025 keeps the oldest working key of each name as it is and numbers the
    later ones (“CI (3)”), within the column and past the names taken; ended keys keep
    theirs. Each rename is in the audit trail."""
    now = datetime.now(UTC)
    old = migrated_back([BEFORE_THE_CONSTRAINT])
    try:
        project = old.get_model("accounts", "Project").objects.create(name="Old", slug="old")
        other = old.get_model("accounts", "Project").objects.create(name="Other", slug="other")
        made = iter(range(100))

        def key(name: str, minutes: int, owner=project, **fields):
            return old.get_model("apikeys", "ApiKey").objects.create(
                project=owner,
                name=name,
                token_hash=f"{next(made):064d}",
                hint=f"reminix_sk_{minutes:04d}…",
                created_at=now - timedelta(minutes=100 - minutes),
                **fields,
            )

        numbered = key("CI (2)", 0)
        kept = key("CI", 1)
        other_case = key("ci", 2)
        third = key("CI", 3)
        revoked = key("CI", 4, revoked_at=now)
        expired = key("CI", 5, expires_at=now - timedelta(days=1))
        long_kept = key("x" * 100, 6)
        long_later = key("x" * 100, 7)
        elsewhere = key("CI", 8, owner=other)
    finally:
        migrated_to_the_end()

    def name(row) -> str:
        return ApiKey.objects.get(pk=row.pk).name

    assert [name(k) for k in (numbered, kept, revoked, expired, elsewhere)] == ["CI (2)"] + [
        "CI"
    ] * 4
    assert name(other_case) == "ci (3)"  # “ci (2)” is “CI (2)” whatever its case
    assert name(third) == "CI (4)"
    assert name(long_kept) == "x" * 100 and name(long_later) == "x" * 96 + " (2)"
    renamed = AuditEvent.objects.filter(action="api_key.renamed")
    assert {(e.target_id, e.metadata["from"], e.metadata["to"]) for e in renamed} == {
        (str(other_case.pk), "ci", "ci (3)"),
        (str(third.pk), "CI", "CI (4)"),
        (str(long_later.pk), "x" * 100, "x" * 96 + " (2)"),
    }
    assert all(e.actor is None and e.actor_email for e in renamed)
    with pytest.raises(IntegrityError), transaction.atomic():
        raw_key(ApiKey.objects.get(pk=kept.pk).project, "ci", 99)


def test_a_name_spelled_with_a_combining_accent_is_the_name_of_the_key_with_the_accented_letter(
    signed_in, project, make_key, user
):
    """“Café” typed with é (U+00E9) or with e and a combining acute (U+0301, as macOS file
    names and some keyboards give it) is one name in every list, but two strings to the
    database: both were taken, two working keys nobody could tell apart. A name is kept
    composed (NFC), so they meet in the check and in the index."""
    make_key(project, name="Café")
    decomposed = "Cafe\u0301"
    refused = create(signed_in, project, name=decomposed, headers=HTMX)
    assert refused.status_code == 422
    assert 'id="id_name_error"' in refused.content.decode()
    _, secret = personal_token_create(user=user, name="Keys", permissions=["agents", "keys"])
    automation = Api(Client(), secret)
    headers = {"X-Project": project.slug}
    error = assert_error(
        automation.post("/v1/api-keys", {"name": decomposed}, headers=headers),
        400,
        "invalid_field_value",
    )
    assert "name" in error["message"]
    staging, _ = make_key(project, name="Staging")
    renamed = signed_in.post(rename_url(project, staging), {"name": decomposed}, headers=HTMX)
    assert renamed.status_code == 422
    with pytest.raises(KeyNameTaken):  # what createapikey and every other caller goes through
        api_key_create(project=project, name=decomposed, created_by=user)
    api_key_rename(api_key=staging, name="Cre\u0300me", by=user)
    assert ApiKey.objects.get(pk=staging.pk).name == "Crème"
    assert ApiKey.objects.filter(project=project).count() == 2


@pytest.mark.parametrize("invisible", ["\u200b", "\u2060", "\ufeff", "\u00ad", "\u034f", "\u3164"])
def test_a_name_with_an_invisible_character_is_refused_beside_the_field(
    signed_in, project, make_key, user, invisible
):
    """“Production” and “Production” with a zero-width space (or a soft hyphen, a word
    joiner, …) read alike in every list and alert, and were two names: a second working
    “Production” nobody could tell from the first."""
    make_key(project, name="Production")
    refused = create(signed_in, project, name=f"Produc{invisible}tion", headers=HTMX)
    assert refused.status_code == 422
    assert "invisible" in refused.content.decode()
    _, secret = personal_token_create(user=user, name="Keys", permissions=["agents", "keys"])
    automation = Api(Client(), secret)
    answer = automation.post(
        "/v1/api-keys", {"name": f"Production{invisible}"}, headers={"X-Project": project.slug}
    )
    assert "name" in assert_error(answer, 400, "invalid_field_value")["message"]
    assert ApiKey.objects.filter(project=project).count() == 1


def test_a_name_that_grows_past_100_characters_once_composed_is_refused_not_a_500(
    signed_in, project, user
):
    """What keeping names composed must not break: a few letters come apart when composed
    (क़, U+0958, is kept as क + ़), so sixty of them typed are 120 kept, past the column."""
    refused = create(signed_in, project, name="\u0958" * 60, headers=HTMX)
    assert refused.status_code == 422
    assert 'id="id_name_error"' in refused.content.decode()
    _, secret = personal_token_create(user=user, name="Keys", permissions=["agents", "keys"])
    automation = Api(Client(), secret)
    answer = automation.post(
        "/v1/api-keys", {"name": "\u0958" * 60}, headers={"X-Project": project.slug}
    )
    assert_error(answer, 400, "invalid_field_value")
    assert not ApiKey.objects.filter(project=project).exists()


def test_createapikey_refuses_a_name_of_two_lines(project):
    """The command checked a name's length and nothing else: a line break went into the
    key's name, and from there into every list, log line and alert about it."""
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="one line"):
        call_command("createapikey", project=project.slug, name="Deploy\nBcc: x@example.com")
    assert not ApiKey.objects.filter(project=project).exists()


def test_a_secret_pasted_into_a_keys_name_is_refused_and_kept_nowhere(
    signed_in, project, make_key, user
):
    """People paste the secret they were just shown into the next field they see. As a
    name it was kept in clear and shown in every list, audit event, alert and expiry
    email, to every member, for good. Agent names refuse a token already; key names now
    do too, on the page, in /v1/api-keys and in createapikey."""
    from django.core.management import CommandError, call_command

    _, secret = make_key(project, name="Production")
    refused = create(signed_in, project, name=f"prod {secret}", headers=HTMX)
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_name_error"' in html and "looks like a Reminix token" in html
    assert secret not in html
    _, pat = personal_token_create(user=user, name="Keys", permissions=["agents", "keys"])
    automation = Api(Client(), pat)
    answer = automation.post("/v1/api-keys", {"name": secret}, headers={"X-Project": project.slug})
    error = assert_error(answer, 400, "invalid_field_value")
    assert "name" in error["message"] and secret not in answer.content.decode()
    production = ApiKey.objects.get(project=project)
    renamed = signed_in.post(rename_url(project, production), {"name": secret}, headers=HTMX)
    assert renamed.status_code == 422
    with pytest.raises(CommandError, match="looks like a Reminix token"):
        call_command("createapikey", project=project.slug, name=pat)
    assert list(ApiKey.objects.filter(project=project).values_list("name", flat=True)) == [
        "Production"
    ]
    assert not [e for e in AuditEvent.objects.all() if secret in str(e.metadata) + e.target_label]


def test_a_secret_pasted_into_a_keys_notes_is_refused_too(signed_in, project, make_key):
    """Notes say “where it is stored”, and are shown in the list and kept in the audit
    trail: the secret itself pasted there was all of that, in clear."""
    _, secret = make_key(project, name="Production")
    refused = create(signed_in, project, name="Worker", notes=f"the secret: {secret}", headers=HTMX)
    assert refused.status_code == 422
    html = refused.content.decode()
    assert 'id="id_notes_error"' in html and "looks like a Reminix token" in html
    assert secret not in html
    production = ApiKey.objects.get(project=project)
    renamed = signed_in.post(
        rename_url(project, production), {"name": "Production", "notes": secret}, headers=HTMX
    )
    assert renamed.status_code == 422 and secret not in renamed.content.decode()
    production.refresh_from_db()
    assert production.notes == "" and ApiKey.objects.filter(project=project).count() == 1
