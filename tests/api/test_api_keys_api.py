"""/v1/api-keys (issue 11, point 9): a project's keys managed by automation with a PAT that
has the `keys` permission and X-Project; the same services and audit events as the pages;
every refusal in the envelope."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.services import project_set_key_policy
from apikeys.models import ApiKey, ClientToken
from apikeys.services import api_key_create, personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api, held_back_until_both_are_ready, run_together

INVOKE = "/v1/agents/my-agent/invoke"
NAME_TAKEN = "The field 'name' is already the name of a working key here."


def test_create_shows_the_secret_once_and_the_key_works(admin, project, user):
    created = assert_ok(
        admin.post("/v1/api-keys", {"name": "CI deploys", "permissions": ["agents"]}), 201
    )
    secret = created["secret"]
    assert secret.startswith("reminix_sk_") and created["status"] == "active"
    assert created["permissions"] == ["agents"] and created["id"].startswith("key_")
    assert_ok(Api(Client(), secret).post(INVOKE, {"prompt": "hi"}))
    listed = assert_ok(admin.get("/v1/api-keys"))
    assert [k["id"] for k in listed["data"]] == [created["id"]]
    assert "secret" not in listed["data"][0] and secret not in str(listed)
    one = assert_ok(admin.get(f"/v1/api-keys/{created['id']}"))
    assert one["hint"] == created["hint"] and "secret" not in one
    event = AuditEvent.objects.get(action="api_key.created")
    assert event.actor == user and event.project == project


def test_rename_roll_suspend_resume_and_revoke_go_through_the_services(admin, project):
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    old = Api(Client(), created["secret"])

    assert assert_ok(admin.send("PATCH", url, {"name": "Web (EU)"}))["name"] == "Web (EU)"

    rolled = assert_ok(admin.post(f"{url}/roll", {"overlapSeconds": 3600}), 201)
    assert rolled["secret"] != created["secret"] and rolled["hint"] != created["hint"]
    assert rolled["previousSecret"]["hint"] == created["hint"]
    assert_ok(old.post(INVOKE, {"prompt": "old, in the overlap"}))
    new = Api(Client(), rolled["secret"])

    suspended = assert_ok(admin.post(f"{url}/suspend", {"reason": "Looking into it"}))
    assert suspended["status"] == "suspended"
    assert_error(new.post(INVOKE, {"prompt": "x"}), 401, "suspended_api_key")
    assert assert_ok(admin.post(f"{url}/resume"))["status"] == "active"
    assert_ok(new.post(INVOKE, {"prompt": "x"}))

    assert admin.send("DELETE", url).status_code == 204
    assert_error(new.post(INVOKE, {"prompt": "x"}), 401, "expired_api_key")
    assert assert_ok(admin.get(url))["status"] == "revoked"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {
        "api_key.renamed",
        "api_key.rolled",
        "api_key.suspended",
        "api_key.resumed",
        "api_key.revoked",
    } <= actions
    assert_error(admin.post(f"{url}/roll", {"overlapSeconds": 0}), 409, "invalid_request")


def test_an_api_key_or_a_pat_without_keys_is_refused(api, user, project):
    error = assert_error(api.get("/v1/api-keys"), 403, "insufficient_permissions")
    assert "personal access token" in error["message"]
    _, secret = personal_token_create(user=user, name="Full")  # full access has no keys
    plain = Api(Client(), secret)
    error = assert_error(
        plain.get("/v1/api-keys", headers={"X-Project": project.slug}),
        403,
        "insufficient_permissions",
    )
    assert "'keys'" in error["message"]
    assert_error(admin_without_project(user).get("/v1/api-keys"), 400, "missing_required_field")


def test_no_api_key_is_ever_given_the_keys_permission(user, project):
    """An API key holding 'keys' would pass the /v1/api-keys check (has_permission reads
    the row): the service is what keeps it off every key, however the key is made."""
    with pytest.raises(ValueError, match="keys"):
        api_key_create(project=project, name="CI", created_by=user, permissions=["keys"])
    with pytest.raises(ValueError, match="keys"):
        api_key_create(
            project=project, name="CI", created_by=user, permissions=["agents", "read", "keys"]
        )
    assert not ApiKey.objects.filter(project=project).exists()


def test_an_api_key_whose_row_holds_keys_still_cannot_manage_keys(api, api_key):
    """The service keeps 'keys' off every key it makes; a row written another way (by
    hand, an import, older code) must not make a server's key a key manager either."""
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(permissions=[*key.permissions, "keys"])
    assert_error(api.get("/v1/api-keys"), 403, "insufficient_permissions")
    assert_error(
        api.post("/v1/api-keys", {"name": "Minted by a key"}), 403, "insufficient_permissions"
    )
    assert ApiKey.objects.filter(project=key.project).count() == 1


def test_an_api_key_whose_row_holds_keys_is_not_described_as_holding_it(admin, api_key):
    """It cannot use 'keys' (has_permission), and the key's description says what it can
    do, as its page does: the schema's permissions are agents, read and write alone."""
    key, _ = api_key
    ApiKey.objects.filter(pk=key.pk).update(permissions=[*key.permissions, "keys"])
    one = assert_ok(admin.get(f"/v1/api-keys/key_{key.pk}"))
    assert one["permissions"] == ["agents", "read", "write"]
    listed = assert_ok(admin.get("/v1/api-keys"))
    assert listed["data"][0]["permissions"] == ["agents", "read", "write"]


def admin_without_project(user) -> Api:
    _, secret = personal_token_create(user=user, name="No project", permissions=["keys"])
    return Api(Client(), secret)


def test_another_projects_key_is_not_found(admin, make_project, make_user):
    theirs = make_project(make_user(email="them@example.com"), name="Theirs")
    their_key, _ = api_key_create(project=theirs, name="Theirs", created_by=None)
    for method in ("GET", "PATCH", "DELETE"):
        response = admin.send(method, f"/v1/api-keys/key_{their_key.pk}", {"name": "Mine"})
        assert_error(response, 404, "not_found")
    assert_error(admin.post(f"/v1/api-keys/key_{their_key.pk}/roll"), 404, "not_found")
    assert ApiKey.objects.get(pk=their_key.pk).revoked_at is None


@pytest.mark.parametrize(
    "path", ["key_0", "key_99999999999999999999", "1", "key_1²", "reminix_sk_abc", "key_%00"]
)
def test_odd_ids_are_404s(admin, path):
    assert_error(admin.get(f"/v1/api-keys/{path}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": "invoice\u202egpj.exe"}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "k", "permissions": []}, "permissions"),
        ({"name": "k", "permissions": ["keys"]}, "permissions"),
        ({"name": "k", "permissions": "agents"}, "permissions"),
        ({"name": "k", "expiresAt": "9999-12-31T00:00:00Z"}, "expiresAt"),
        ({"name": "k", "expiresAt": "2020-01-01T00:00:00Z"}, "expiresAt"),
        ({"name": "k", "expiresAt": "2027-02-30T00:00:00Z"}, "expiresAt"),
        ({"name": "k", "expiresAt": "2027-01-01T00:00:00"}, "expiresAt"),
        ({"name": "k", "expiresAt": 1767225600}, "expiresAt"),
        # format: date-time (RFC 3339) is ASCII digits; parse_datetime's \d took others.
        ({"name": "k", "expiresAt": "２０２７-０１-０１T00:00:00Z"}, "expiresAt"),
        ({"name": "k", "expiresAt": "٢٠٢٧-٠١-٠١T00:00:00+00:00"}, "expiresAt"),
        ({"name": "k", "expiresAt": "2027-01-01T00:00:00+٠١:00"}, "expiresAt"),
        ({"name": "k", "agents": ["bad name"]}, "agents"),
        ({"name": "k", "agentActions": ["agents:delete"]}, "agentActions"),
        ({"name": "k", "allowedNetworks": ["0.0.0.0/0"]}, "allowedNetworks"),
        ({"name": "k", "allowedNetworks": ["1²7.0.0.1"]}, "allowedNetworks"),
    ],
)
def test_bad_create_bodies_are_400s_naming_the_field(admin, body, field):
    response = admin.post("/v1/api-keys", body)
    code = "missing_required_field" if body == {} else "invalid_field_value"
    error = assert_error(response, 400, code)
    assert field in error["message"]


@pytest.mark.parametrize(
    ("agents", "item", "saying"),
    [
        ([""], "agents[0]", "names no agent"),
        (["support", "  "], "agents[1]", "names no agent"),
        (["support,billing"], "agents[0]", "is not an agent name"),
        ([" support"], "agents[0]", "is not an agent name"),
        (["support", "a\nb"], "agents[1]", "does not print"),
    ],
)
def test_an_agent_scope_that_is_not_names_as_a_whole_makes_no_key(admin, agents, item, saying):
    """[""] made a key for every agent, a wider key than was asked for; "support,billing"
    one for two agents and " support" one for support: each item is one name as sent."""
    error = assert_error(
        admin.post("/v1/api-keys", {"name": "Scoped", "agents": agents}),
        400,
        "invalid_field_value",
    )
    assert f"'{item}'" in error["message"] and saying in error["message"], error
    assert error["message"].isprintable()
    assert not ApiKey.objects.filter(name="Scoped").exists()


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/api-keys", '{"name": "Scoped", "agents": ["support"], "agents": []}'),
        ("/v1/api-keys", '{"name": "Scoped", "permissions": ["read"], "permissions": null}'),
        ("/v1/client-tokens", '{"context": {}, "agents": ["support"], "agents": null}'),
        ("/v1/client-tokens", '{"context": {"a": {"x": 1, "x": 2}}}'),
    ],
    ids=["key-agents", "key-permissions", "client-token-agents", "nested"],
)
def test_a_body_naming_a_field_twice_is_refused_and_makes_nothing(admin, path, raw):
    """`{"agents": ["support"], "agents": []}` made a key for every agent: the last of the
    two was taken, and a proxy, a log or a reviewer that reads the first (as many
    parsers do) saw a key scoped to support. A name twice in one object says two things
    at once; it is refused (I-JSON, RFC 7493), wherever the object sits."""
    response = admin.client.generic(
        "POST",
        path,
        raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {admin.token}"},
    )
    error = assert_error(response, 400, "invalid_request")
    assert "twice" in error["message"], error
    assert not ApiKey.objects.filter(name="Scoped").exists()


@pytest.mark.parametrize("path", ["/v1/api-keys", "/v1/client-tokens"])
def test_an_agent_scope_holding_a_tokens_secret_without_its_prefix_is_refused(
    admin, project, make_key, path
):
    """The 36 characters after a token's prefix are letters and digits, an agent name's
    shape: pasted into `agents` they were kept as the scope, answered back and shown on
    the key's and the client token's pages, a secret anyone who reads it can use with the
    prefix everyone knows. Known by their checksum (apikeys.tokens.holds_token_rest), as
    in a client token's context."""
    _, secret = make_key(project, name="Production")
    body = {"agents": ["support", secret.removeprefix("reminix_sk_")]}
    body |= {"name": "Scoped"} if path == "/v1/api-keys" else {"context": {}}
    error = assert_error(admin.post(path, body), 400, "invalid_field_value")
    assert "agents[1]" in error["message"] and "token" in error["message"], error
    assert secret[11:] not in json.dumps(error)
    assert not ApiKey.objects.filter(name="Scoped").exists()
    assert not ClientToken.objects.exists()
    # An agent's name of that length that is no token's is one.
    assert_ok(admin.post(path, {**body, "agents": ["a" * 36]}), 201)


def test_a_name_holding_a_tokens_secret_without_its_prefix_is_refused(admin, project, make_key):
    """As in an agent scope: a key so named sent a working secret out in every mail,
    webhook and alert that names it (apikeys.services.no_token_rest)."""
    _, secret = make_key(project, name="Production")
    rest = secret.removeprefix("reminix_sk_")
    answer = admin.post("/v1/api-keys", {"name": f"CI {rest}"})
    error = assert_error(answer, 400, "invalid_field_value")
    assert "token" in error["message"] and rest not in json.dumps(error), error
    assert not ApiKey.objects.filter(name__contains=rest).exists()


@pytest.mark.parametrize("field", ["agents", "agentActions", "allowedNetworks"])
def test_an_empty_limit_is_refused_not_read_as_no_limit(admin, field):
    """[] was a key for every agent, both actions or any network: what a caller whose own
    list filtered down to nothing gets is a refusal; left out, the field is no limit."""
    error = assert_error(
        admin.post("/v1/api-keys", {"name": "Narrow", field: []}), 400, "invalid_field_value"
    )
    assert f"'{field}'" in error["message"] and "leave it out" in error["message"]
    assert not ApiKey.objects.filter(name="Narrow").exists()
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Wide"}), 201)
    assert created[field] == []  # as the answer writes no limit


def test_an_agent_named_twice_is_kept_once(admin):
    created = assert_ok(
        admin.post("/v1/api-keys", {"name": "Scoped", "agents": ["support", "support"]}), 201
    )
    assert created["agents"] == ["support"]


def test_odd_roll_and_suspend_bodies_are_refused_and_change_nothing(admin):
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    for seconds in (-1, 604801, 1.5, "3600", True):
        assert_error(
            admin.post(f"{url}/roll", {"overlapSeconds": seconds}), 400, "invalid_field_value"
        )
    # A number past 64 bits is refused with the body, before any field is read.
    assert_error(admin.post(f"{url}/roll", {"overlapSeconds": 10**30}), 400, "invalid_request")
    for reason in ("", "two\nlines", "x" * 201, None):
        response = admin.post(f"{url}/suspend", {"reason": reason})
        assert response.status_code == 400
    key = ApiKey.objects.get(pk=created["id"].removeprefix("key_"))
    assert key.hint == created["hint"] and key.suspended_at is None


def test_the_lifetime_policy_holds_over_the_api_too(admin, project, user):
    project_set_key_policy(project=project, max_key_days=30, max_pat_days=None, by=user)
    error = assert_error(
        admin.post("/v1/api-keys", {"name": "Forever"}), 400, "invalid_field_value"
    )
    assert "30 days" in error["message"]
    soon = (timezone.now() + timedelta(days=10)).isoformat()
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Month", "expiresAt": soon}), 201)
    assert created["expiresAt"] is not None


def test_an_expiry_at_an_offset_postgresql_cannot_store_is_kept_as_the_same_moment(admin):
    # ISO 8601 and Python take offsets up to 23:59; PostgreSQL's timestamptz refuses any
    # beyond 15:59 ("time zone displacement out of range"): a 500, not a key.
    moment = (timezone.now() + timedelta(days=30)).replace(microsecond=0)
    typed = moment.astimezone(timezone.get_fixed_timezone(23 * 60 + 59)).isoformat()
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Far east", "expiresAt": typed}), 201)
    assert created["expiresAt"] == moment.isoformat()  # in UTC, as every time it answers
    assert ApiKey.objects.get(name="Far east").expires_at == moment


def test_a_create_retried_with_its_idempotency_key_never_shows_the_secret_again(admin):
    headers = {"Idempotency-Key": "create-ci-key-1"}
    first = assert_ok(admin.post("/v1/api-keys", {"name": "CI"}, headers=headers), 201)
    again = admin.post("/v1/api-keys", {"name": "CI"}, headers=headers)
    assert first["secret"] not in again.content.decode()
    assert ApiKey.objects.filter(name="CI").count() == 1


def test_pages_follow_the_cursor(admin, project):
    for n in range(3):
        api_key_create(project=project, name=f"k{n}", created_by=None)
    first = assert_ok(admin.get("/v1/api-keys", limit="2"))
    assert len(first["data"]) == 2 and first["hasMore"]
    rest = assert_ok(admin.get("/v1/api-keys", limit="2", cursor=first["nextCursor"]))
    assert [k["name"] for k in rest["data"]] == ["k0"] and not rest["hasMore"]
    for bad in ("²", "AA==", "a\x00"):
        assert_error(admin.get("/v1/api-keys", cursor=bad), 400, "invalid_field_value")
    assert_error(admin.get("/v1/api-keys", limit="²"), 400, "invalid_field_value")


def test_the_pat_form_grants_keys_only_when_ticked(signed_in, user):
    from django.urls import reverse

    from apikeys.models import PersonalAccessToken
    from tests.conftest import HTMX

    url = reverse("apikeys:personal_token_create")
    for name, ticked in (("Plain", False), ("Rotation", True)):
        form = signed_in.get(url, headers=HTMX)
        data = {
            "name": name,
            "access": "full",
            "expiry": "30",
            "reach": "all",
            "form_id": form.context["form_id"],
        }
        if ticked:
            data["manage_keys"] = "on"
        assert signed_in.post(url, data, headers=HTMX).status_code == 201
    assert "keys" not in PersonalAccessToken.objects.get(name="Plain").permissions
    rotation = PersonalAccessToken.objects.get(name="Rotation")
    assert "keys" in rotation.permissions and not rotation.is_restricted
    page = signed_in.get(reverse("apikeys:personal_token_list")).content.decode()
    assert ">keys</span>" in page


def test_a_create_with_bad_networks_leaves_no_key_behind(admin):
    """Found in review: the key used to be committed before its networks were checked."""
    body = {"name": "Half made", "allowedNetworks": ["10.0.0.0/8", "nonsense"]}
    assert_error(admin.post("/v1/api-keys", body), 400, "invalid_field_value")
    assert not ApiKey.objects.filter(name="Half made").exists()


def test_a_name_a_working_key_already_has_is_refused(admin):
    assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    other = assert_ok(admin.post("/v1/api-keys", {"name": "Worker"}), 201)
    error = assert_error(admin.post("/v1/api-keys", {"name": "WEB"}), 400, "invalid_field_value")
    assert "name" in error["message"]
    renamed = admin.send("PATCH", f"/v1/api-keys/{other['id']}", {"name": "web"})
    assert_error(renamed, 400, "invalid_field_value")


def test_patch_honours_an_idempotency_key_as_the_contract_says(admin):
    key = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    headers = {"Idempotency-Key": "rename-1"}
    path = f"/v1/api-keys/{key['id']}"
    first = admin.send("PATCH", path, {"name": "first"}, headers=headers)
    again = admin.send("PATCH", path, {"name": "first"}, headers=headers)
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    other = admin.send("PATCH", path, {"name": "second"}, headers=headers)
    assert "different request" in assert_error(other, 400, "invalid_request")["message"]
    assert assert_ok(admin.get(path))["name"] == "first"


def test_a_create_that_loses_its_name_to_another_request_gets_the_name_error(
    admin, project, monkeypatch
):
    """The check above the insert missed the other request's key (not committed yet when
    it looked): the constraint refuses the name, the answer is the check's own 400, and
    neither the key nor its networks nor its audit event are left behind."""
    import api.api_keys

    api_key_create(project=project, name="CI", created_by=None)
    monkeypatch.setattr(api.api_keys, "key_name_taken", lambda *args, **kwargs: False)
    events = AuditEvent.objects.count()
    body = {"name": "ci", "allowedNetworks": ["203.0.113.0/24"]}
    error = assert_error(admin.post("/v1/api-keys", body), 400, "invalid_field_value")
    assert error["message"] == NAME_TAKEN
    assert list(ApiKey.objects.values_list("name", "allowed_networks")) == [("CI", [])]
    assert AuditEvent.objects.count() == events


def test_a_rename_that_loses_its_name_to_a_new_key_gets_the_name_error(admin, project, monkeypatch):
    import api.api_keys

    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    api_key_create(project=project, name="Web (EU)", created_by=None)
    monkeypatch.setattr(api.api_keys, "key_name_taken", lambda *args, **kwargs: False)
    url = f"/v1/api-keys/{created['id']}"
    error = assert_error(admin.send("PATCH", url, {"name": "web (eu)"}), 400, "invalid_field_value")
    assert error["message"] == NAME_TAKEN
    assert assert_ok(admin.get(url))["name"] == "Web"
    assert not AuditEvent.objects.filter(action="api_key.renamed").exists()


@pytest.mark.django_db(transaction=True)
def test_one_name_created_by_two_requests_at_once_makes_one_key(admin, project, monkeypatch):
    from django.db import connection

    import api.api_keys

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    # Both requests are past the check of the name before either inserts.
    held_back_until_both_are_ready(monkeypatch, (api.api_keys, "api_key_create"))
    responses = []

    def send() -> None:
        responses.append(
            Api(Client(), admin.token).post(
                "/v1/api-keys", {"name": "CI"}, headers={"X-Project": project.slug}
            )
        )

    run_together(send, send)
    assert sorted(r.status_code for r in responses) == [201, 400]
    loser = next(r for r in responses if r.status_code == 400)
    error = assert_error(loser, 400, "invalid_field_value")
    assert error["message"] == NAME_TAKEN
    assert ApiKey.objects.filter(project=project).count() == 1
    assert AuditEvent.objects.filter(action="api_key.created").count() == 1


def test_a_revoked_keys_old_secret_is_not_shown_as_still_working(admin):
    """Revoking a key ends both its secrets (README, Roll): its answer must not tell a
    rotation job that the old secret works until the overlap's end."""
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    assert_ok(admin.post(f"{url}/roll", {"overlapSeconds": 3600}), 201)
    old = Api(Client(), created["secret"])
    assert admin.send("DELETE", url).status_code == 204
    assert_error(old.post(INVOKE, {"prompt": "x"}), 401, "expired_api_key")
    shown = assert_ok(admin.get(url))
    assert shown["status"] == "revoked" and shown["previousSecret"] is None
    assert assert_ok(admin.get("/v1/api-keys"))["data"][0]["previousSecret"] is None


def test_an_old_secret_is_shown_ending_with_its_key_when_the_key_ends_first(admin, project):
    """A key expiring in an hour, rolled with a day's overlap: its old secret stops with
    the key, in an hour, and previousSecret.expiresAt says so (as X-Reminix-Token-Expires
    does for calls made with it)."""
    ends = timezone.now() + timedelta(hours=1)
    key, _ = api_key_create(project=project, name="Short", created_by=None, expires_at=ends)
    rolled = assert_ok(
        admin.post(f"/v1/api-keys/key_{key.pk}/roll", {"overlapSeconds": 86400}), 201
    )
    assert rolled["previousSecret"]["expiresAt"] == ends.isoformat()


def test_an_overlap_written_as_a_whole_number_with_an_exponent_is_taken(admin):
    """As ttlSeconds: the schema's integer, 3.6e3, is an hour."""
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    rolled = assert_ok(
        admin.post(f"/v1/api-keys/{created['id']}/roll", {"overlapSeconds": 3.6e3}), 201
    )
    ends = datetime.fromisoformat(rolled["previousSecret"]["expiresAt"])
    assert abs((ends - timezone.now()).total_seconds() - 3600) < 60


def test_a_revoked_or_expired_key_cannot_be_resumed_or_suspended_as_it_cannot_be_rolled(
    admin, project
):
    """Resume is described as "it works again from its next call": for a revoked key it
    answered 200 while the key went on getting 401, so a script that resumed a key after
    an incident was told it was back. Both are 409 naming why, as a roll of it is."""
    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    assert_ok(admin.post(f"{url}/suspend", {"reason": "Looking into it"}))
    assert admin.send("DELETE", url).status_code == 204
    for action, body in (("resume", None), ("suspend", {"reason": "Again"})):
        error = assert_error(admin.post(f"{url}/{action}", body), 409, "invalid_request")
        assert "revoked" in error["message"]
    gone, _ = api_key_create(
        project=project,
        name="Gone",
        created_by=None,
        expires_at=timezone.now() + timedelta(seconds=1),
    )
    ApiKey.objects.filter(pk=gone.pk).update(expires_at=timezone.now() - timedelta(days=1))
    error = assert_error(
        admin.post(f"/v1/api-keys/key_{gone.pk}/suspend", {"reason": "x"}), 409, "invalid_request"
    )
    assert "expired" in error["message"]
    assert not AuditEvent.objects.filter(
        action="api_key.suspended", target_id=str(gone.pk)
    ).exists()


@pytest.mark.parametrize("ended", ["revoked", "expired"])
def test_a_revoked_or_expired_key_cannot_be_renamed_as_it_cannot_be_rolled(admin, project, ended):
    """An ended key stays for the record, as it was: a rename of it answered 200 and
    recorded api_key.renamed, where a roll, suspend or resume of it is 409 naming why
    (Stripe refuses an update of a deleted object too)."""
    key, _ = api_key_create(
        project=project, name="Web", created_by=None, expires_at=timezone.now() + timedelta(1)
    )
    if ended == "revoked":
        key.revoke(by=None)
    else:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(days=1))
    answer = admin.send("PATCH", f"/v1/api-keys/key_{key.pk}", {"name": "Renamed"})
    assert ended in assert_error(answer, 409, "invalid_request")["message"]
    key.refresh_from_db()
    assert key.name == "Web"
    assert not AuditEvent.objects.filter(action="api_key.renamed").exists()


def test_a_roll_without_an_overlap_stops_the_old_secret_now_as_the_description_says(admin):
    """The dashboard's roll form starts at 24 hours; the API's default is none. A script
    reading /v1/openapi.json for the default found none given, so it is stated there."""
    from api.openapi import openapi_document

    created = assert_ok(admin.post("/v1/api-keys", {"name": "Web"}), 201)
    rolled = assert_ok(admin.post(f"/v1/api-keys/{created['id']}/roll"), 201)
    assert rolled["previousSecret"] is None
    assert_error(
        Api(Client(), created["secret"]).post(INVOKE, {"prompt": "x"}), 401, "expired_api_key"
    )
    body = openapi_document()["paths"]["/v1/api-keys/{id}/roll"]["post"]["requestBody"]
    overlap = body["content"]["application/json"]["schema"]["properties"]["overlapSeconds"]
    assert overlap["default"] == 0


def test_the_create_schema_refuses_the_lists_the_api_refuses(admin):
    """Four permissions (one repeated) met the document, which set no most, and were
    refused as "at most 3": the document now says unique and at most 3 (2 actions)."""
    import jsonschema

    from api.openapi import openapi_document

    body = openapi_document()["paths"]["/v1/api-keys"]["post"]["requestBody"]
    schema = body["content"]["application/json"]["schema"]
    for sent in (
        {"name": "k", "permissions": ["read", "read", "read", "read"]},
        {"name": "k", "agentActions": ["agents:chat"] * 3},
    ):
        assert_error(admin.post("/v1/api-keys", sent), 400, "invalid_field_value")
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(sent, schema, cls=jsonschema.Draft202012Validator)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("action", "body"), [("resume", None), ("suspend", {"reason": "x"})])
def test_a_key_revoked_while_its_resume_or_suspend_is_on_its_way_is_409_not_done(
    admin, project, user, monkeypatch, action, body
):
    """The key is checked before the change; revoked between the two (an incident has
    two people on it), the change did nothing, and the answer was a 200 that said it
    was done: for a resume, that the key works again."""
    from django.db import connection

    import api.api_keys
    from apikeys.services import api_key_revoke, api_key_suspend
    from tests.conftest import finished, paused_in_another_thread

    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: concurrency is shown on PostgreSQL.")
    key, _ = api_key_create(project=project, name="Web", created_by=user)
    if action == "resume":
        api_key_suspend(api_key=key, by=user, reason="Looking into it")
    answers = []

    def send() -> None:
        answers.append(
            Api(Client(), admin.token).post(
                f"/v1/api-keys/key_{key.pk}/{action}", body, headers={"X-Project": project.slug}
            )
        )

    thread, go, _, failures = paused_in_another_thread(
        monkeypatch, api.api_keys, f"api_key_{action}", send
    )
    try:
        api_key_revoke(api_key=ApiKey.objects.get(pk=key.pk), by=user)
    finally:
        go.set()
        finished(thread)
    assert failures == []
    (answer,) = answers
    assert "revoked" in assert_error(answer, 409, "invalid_request")["message"]
    assert not AuditEvent.objects.filter(action=f"api_key.{action}d").exists()


def test_an_ended_key_still_tried_says_when_and_from_where_it_was_last_refused(admin):
    """What the key list says of it ("still tried: refused 3 minutes ago from …"), for a
    rotation or incident script: lastRefusedAt and lastRefusedIp, the key's own last
    refusal as revoked or expired (its client tokens' are not the key's secret being
    held), null while it has none; both in the document's ApiKey, whose answers are
    closed (additionalProperties: false)."""
    from jsonschema import Draft202012Validator

    from api.openapi import openapi_document

    created = assert_ok(admin.post("/v1/api-keys", {"name": "Leaked"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    assert created["lastRefusedAt"] is None and created["lastRefusedIp"] is None
    leaked = Api(Client(), created["secret"])
    leaked.client.defaults["REMOTE_ADDR"] = "2001:db8::9"
    assert admin.send("DELETE", url).status_code == 204
    assert_error(leaked.post(INVOKE, {"prompt": "x"}), 401, "expired_api_key")
    key = ApiKey.objects.get()
    assert key.last_refused_at is not None and key.last_refused_ip == "2001:db8::9"
    schema = Draft202012Validator(openapi_document()["components"]["schemas"]["ApiKey"])
    for shown in (assert_ok(admin.get(url)), assert_ok(admin.get("/v1/api-keys"))["data"][0]):
        assert shown["lastRefusedAt"] == key.last_refused_at.isoformat()
        assert shown["lastRefusedIp"] == "2001:db8::9"
        assert list(schema.iter_errors(shown)) == []


def test_a_key_says_from_where_it_was_last_used_beside_when(admin):
    """lastUsedAt came without its address, which the key list shows beside it ("from
    …") and the API gave for its last refusal only: a script checking where a key is
    used from had to open the dashboard. lastUsedIp: the address of the key's own last
    successful call (its client tokens' mark them, not the key), null until it has one;
    in the document's closed ApiKey."""
    from jsonschema import Draft202012Validator

    from api.openapi import openapi_document

    created = assert_ok(admin.post("/v1/api-keys", {"name": "Server"}), 201)
    url = f"/v1/api-keys/{created['id']}"
    assert created["lastUsedAt"] is None and created["lastUsedIp"] is None
    server = Api(Client(), created["secret"])
    server.client.defaults["REMOTE_ADDR"] = "2001:db8::7"
    assert_ok(server.post(INVOKE, {"prompt": "x"}))
    key = ApiKey.objects.get()
    assert key.last_used_at is not None and key.last_used_ip == "2001:db8::7"
    schema = Draft202012Validator(openapi_document()["components"]["schemas"]["ApiKey"])
    for shown in (assert_ok(admin.get(url)), assert_ok(admin.get("/v1/api-keys"))["data"][0]):
        assert shown["lastUsedAt"] == key.last_used_at.isoformat()
        assert shown["lastUsedIp"] == "2001:db8::7"
        assert list(schema.iter_errors(shown)) == []
