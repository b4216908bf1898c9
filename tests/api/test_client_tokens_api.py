"""Client tokens: minted by a backend with an API key, used by a browser on /client."""

import datetime
import json

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import AllowedOrigin, Project
from accounts.services import project_delete
from agents.models import Execution
from api.authentication import CLIENT_TOKEN_ENDED
from apikeys.models import ClientToken
from apikeys.services import personal_token_create
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api
from usage.models import UsageRecord

ORIGIN = "https://app.example.com"


def mint(api, **body):
    body.setdefault("context", {"userId": "u_1"})
    return api.post("/v1/client-tokens", body)


@pytest.fixture
def client_api() -> Api:
    return Api(Client(), None)


@pytest.fixture
def minted(api):
    answer = assert_ok(mint(api, serverContext={"plan": "gold", "secret": "s3"}), 201)
    return answer


def test_minting_answers_token_id_and_expiry_an_hour_ahead(api, project):
    answer = assert_ok(mint(api), 201)
    assert set(answer) == {"token", "id", "expiresAt"}
    assert answer["token"].startswith("reminix_ct_") and len(answer["token"]) == 47
    assert answer["id"].startswith("ctok_")
    expires = datetime.datetime.fromisoformat(answer["expiresAt"])
    assert abs((expires - timezone.now()).total_seconds() - 3600) < 60
    stored = ClientToken.objects.get(public_id=answer["id"])
    assert stored.project == project
    assert answer["token"] not in json.dumps(
        ClientToken.objects.filter(pk=stored.pk).values().get(), default=str
    )


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"context": None}, 400, "missing_required_field", "context"),
        ({"context": "text"}, 400, "invalid_field_value", "context"),
        ({"context": {}, "serverContext": [1]}, 400, "invalid_field_value", "serverContext"),
        ({"context": {"x": "a" * 5000}}, 400, "invalid_field_value", "context"),
        (
            {"context": {}, "serverContext": {"x": "a" * 5000}},
            400,
            "invalid_field_value",
            "serverContext",
        ),
        ({"context": {}, "ttlSeconds": 0}, 400, "invalid_field_value", "ttlSeconds"),
        ({"context": {}, "ttlSeconds": 86401}, 400, "invalid_field_value", "ttlSeconds"),
        ({"context": {}, "ttlSeconds": "60"}, 400, "invalid_field_value", "ttlSeconds"),
        ({"context": {}, "ttlSeconds": True}, 400, "invalid_field_value", "ttlSeconds"),
    ],
)
def test_bad_mint_input_is_refused_naming_the_field(api, body, status, code, field):
    error = assert_error(api.post("/v1/client-tokens", body), status, code)
    assert field in error["message"]
    assert not ClientToken.objects.exists()


def test_a_context_is_measured_in_the_bytes_the_customer_sent(api):
    """The limit is 4096 bytes of compact JSON (README, /docs/api/). It was measured with
    every letter beyond ASCII escaped to \\u00e9, six bytes: a 2 KB context of accented
    names, as JSON.stringify and any UTF-8 client send it, was refused as "6011 bytes"."""
    bearer = {"Authorization": f"Bearer {api.token}"}
    for context in ({"note": "é" * 2000}, {"note": "字" * 1300}, {"note": "👋" * 1000}):
        raw = json.dumps({"context": context}, ensure_ascii=False).encode()
        assert len(json.dumps(context, ensure_ascii=False, separators=(",", ":")).encode()) < 4096
        response = api.client.post(
            "/v1/client-tokens", raw, content_type="application/json", headers=bearer
        )
        assert_ok(response, 201)
    too_big = {"note": "é" * 2045}  # 4101 bytes of UTF-8 JSON
    error = assert_error(mint(api, context=too_big), 400, "invalid_field_value")
    assert "4101 bytes" in error["message"]


def test_ttl_of_a_day_is_the_most(api):
    answer = assert_ok(mint(api, ttlSeconds=86400), 201)
    expires = datetime.datetime.fromisoformat(answer["expiresAt"])
    assert abs((expires - timezone.now()).total_seconds() - 86400) < 60


def test_a_ttl_written_as_a_whole_number_with_a_point_or_an_exponent_is_taken(api):
    """OpenAPI 3.1 (JSON Schema 2020-12) counts 1e3 and 1000.0 as the integer 1000, so a
    client checking its body against /v1/openapi.json sends them, and Python's json.dumps
    writes a ttl computed in floats (hours * 3600.0) so: they were refused. A fraction
    still is."""
    bearer = {"Authorization": f"Bearer {api.token}"}
    for raw in (b'{"context": {}, "ttlSeconds": 1e3}', b'{"context": {}, "ttlSeconds": 1000.0}'):
        response = api.client.post(
            "/v1/client-tokens", raw, content_type="application/json", headers=bearer
        )
        answer = assert_ok(response, 201)
        expires = datetime.datetime.fromisoformat(answer["expiresAt"])
        assert abs((expires - timezone.now()).total_seconds() - 1000) < 60
    for fraction in (1.5, 86400.5, 86401.0):
        assert_error(mint(api, ttlSeconds=fraction), 400, "invalid_field_value")


def test_a_client_token_says_it_ends_when_the_key_that_minted_it_expires(make_key, project):
    # It said an hour (or a day) on, though it stops working with the key: a browser
    # planning to renew it before expiresAt found it refused first.
    key_ends = timezone.now() + datetime.timedelta(minutes=10)
    _, secret = make_key(project, name="Ends soon", expires_at=key_ends)
    minted = assert_ok(
        Api(Client(), secret).post("/v1/client-tokens", {"context": {}, "ttlSeconds": 3600}), 201
    )
    assert datetime.datetime.fromisoformat(minted["expiresAt"]) == key_ends
    browser = assert_ok(Api(Client(), minted["token"]).get("/client/token"))
    assert browser["expiresAt"] == minted["expiresAt"]
    assert ClientToken.objects.get(public_id=minted["id"]).expires_at == key_ends


def test_minting_needs_the_agents_permission(api, make_key, project):
    _, read_only = make_key(project, name="Reader", permissions=["read"])
    response = api.post("/v1/client-tokens", {"context": {}}, token=read_only)
    assert_error(response, 403, "insufficient_permissions")


def test_the_browser_reads_its_context_but_never_the_server_context(client_api, minted, project):
    answer = assert_ok(client_api.get("/client/token", token=minted["token"]))
    assert answer == {
        "projectId": project.slug,
        "context": {"userId": "u_1"},
        "expiresAt": minted["expiresAt"],
    }
    assert "serverContext" not in json.dumps(answer) and "gold" not in json.dumps(answer)


def test_invoking_through_the_client_api_gives_the_agent_both_contexts(client_api, minted):
    response = client_api.post(
        "/client/agents/my-agent/invoke", {"prompt": "hi"}, token=minted["token"]
    )
    answer = assert_ok(response)
    assert answer["output"] == "hi"
    assert "gold" not in response.content.decode() and "s3" not in response.content.decode()
    seen = Execution.objects.get(public_id=answer["execution"]["id"]).input
    assert seen["context"] == {"userId": "u_1"}
    assert seen["serverContext"] == {"plan": "gold", "secret": "s3"}


def test_the_browser_cannot_replace_the_tokens_context(client_api, minted):
    response = client_api.post(
        "/client/agents/my-agent/invoke",
        {"prompt": "hi", "context": {"userId": "admin"}},
        token=minted["token"],
    )
    assert "context" in assert_error(response, 400, "invalid_field_value")["message"]


def test_a_client_token_on_v1_is_refused_and_logged_against_it(api, minted):
    for path in ("/v1/agents", "/v1/projects/current"):
        error = assert_error(api.get(path, token=minted["token"]), 403, "insufficient_permissions")
        assert "Client API" in error["message"]
    row = UsageRecord.objects.filter(client_token__public_id=minted["id"]).latest("id")
    assert row.status == 403 and row.api_key is not None


def test_an_api_key_or_pat_on_the_client_api_is_refused(client_api, api_key, user):
    from apikeys.services import personal_token_create

    _, pat = personal_token_create(user=user, name="CLI")
    for token in (api_key[1], pat):
        error = assert_error(
            client_api.get("/client/token", token=token), 403, "insufficient_permissions"
        )
        assert "client token" in error["message"]


def test_an_api_key_or_pat_on_the_client_api_is_logged_against_it(
    client_api, api_key, user, project
):
    """A server key sent to the Client API came from a browser's code, where every visitor
    can read it: the one call its owners most need to see. It was refused before any
    lookup and logged against nobody, so the key's own log never showed it. It is logged
    against the key (its project) or the PAT, as a call that could not be looked up at
    once is (usage/writer.py), and the answer is the same as before: nothing about the
    key is looked up on the way to it."""
    from apikeys.services import api_key_roll, personal_token_create
    from apikeys.tokens import TokenKind, token_generate

    key, secret = api_key
    pat_row, pat = personal_token_create(user=user, name="CLI")
    unknown = str(token_generate(TokenKind.API_KEY))
    for name, token in (("key", secret), ("pat", pat), ("unknown", unknown)):
        response = client_api.get(f"/client/token?n={name}", token=token)
        error = assert_error(response, 403, "insufficient_permissions")
        assert "client token" in error["message"]
        assert "X-Reminix-Token-Expires" not in response

    row = UsageRecord.objects.get(api_key=key)
    assert (row.project_id, row.path, row.status) == (project.pk, "/client/token", 403)
    assert (row.error_code, row.token_kind, row.client_token_id) == (
        "insufficient_permissions",
        "api_key",
        None,
    )
    assert UsageRecord.objects.get(personal_token=pat_row).status == 403
    # A token nobody holds is counted among the calls of no token, as on /v1.
    assert UsageRecord.objects.filter(path="/client/token").count() == 2

    # A rolled key's previous secret, still working through the overlap, counts on it too.
    api_key_roll(api_key=key, by=user, overlap=datetime.timedelta(hours=1))
    assert_error(client_api.get("/client/token", token=secret), 403, "insufficient_permissions")
    assert UsageRecord.objects.filter(api_key=key).count() == 2


def test_a_rolled_keys_old_secret_past_its_overlap_on_the_client_api_counts_on_nobody(
    client_api, api_key, user
):
    """Through the overlap, a rolled key's old secret still works on /v1: sent to the Client
    API it is a working key in a page, and counts on the key. Past the overlap it works
    nowhere; it was counted on the key all the same, and so raised a high alert, emailed,
    telling the owners to roll a key whose secret in that page was already dead (and again
    after each batch of calls, until they rolled once more). It counts among the calls of
    no token, as any other secret that works nowhere; the answer is unchanged."""
    from django.core import mail

    from alerts.detection import detect
    from alerts.models import Flag
    from apikeys.services import api_key_roll

    key, old = api_key
    api_key_roll(api_key=key, by=user, overlap=datetime.timedelta(hours=1))
    key.refresh_from_db()
    key.previous_expires_at = timezone.now() - datetime.timedelta(seconds=1)
    key.save(update_fields=["previous_expires_at"])

    response = client_api.get("/client/token", token=old)

    assert_error(response, 403, "insufficient_permissions")
    assert not UsageRecord.objects.exists()
    detect(now=timezone.now() + datetime.timedelta(minutes=1))
    assert not Flag.objects.exists()
    assert not mail.outbox


def test_a_client_token_cut_short_on_the_client_api_is_called_a_client_token(client_api, minted):
    """The page's developer sent a client token, the only kind the Client API takes: told
    "The API key is malformed", they went looking for an API key in their page."""
    error = assert_error(
        client_api.get("/client/token", token=minted["token"][:-1]), 401, "invalid_api_key"
    )
    assert error["message"] == "The client token is malformed. Check that it was copied whole."


def test_a_key_or_pat_cut_short_on_the_client_api_is_not_called_a_client_token(
    client_api, api_key, user
):
    """Called a client token, a server key cut short in a page sent its developer to fix
    a client token that was never there (and so to send the whole key from the browser)."""
    from apikeys.services import personal_token_create

    _, pat = personal_token_create(user=user, name="CLI")
    for token, noun in ((api_key[1], "API key"), (pat, "personal access token")):
        error = assert_error(
            client_api.get("/client/token", token=token[:-1]), 401, "invalid_api_key"
        )
        assert error["message"] == f"The {noun} is malformed. Check that it was copied whole."


def test_an_expired_client_token_is_refused(client_api, minted):
    ClientToken.objects.filter(public_id=minted["id"]).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    error = assert_error(
        client_api.get("/client/token", token=minted["token"]), 401, "expired_api_key"
    )
    assert "expired" in error["message"]


def test_a_minted_token_dies_with_its_revoked_key(client_api, minted, api_key):
    api_key[0].revoke(by=None)
    error = assert_error(
        client_api.get("/client/token", token=minted["token"]), 401, "expired_api_key"
    )
    # The browser learns that its token ended, not that the customer's key was revoked.
    assert error["message"] == CLIENT_TOKEN_ENDED
    assert "key" not in error["message"].lower()


def test_a_minted_token_dies_with_its_expired_key(client_api, minted, api_key):
    type(api_key[0]).objects.filter(pk=api_key[0].pk).update(
        expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert_error(client_api.get("/client/token", token=minted["token"]), 401, "expired_api_key")


def test_delete_revokes_at_once_and_keeps_the_record(api, client_api, minted):
    response = api.send("DELETE", f"/v1/client-tokens/{minted['id']}")
    assert response.status_code == 204
    assert ClientToken.objects.get(public_id=minted["id"]).revoked_at is not None
    assert_error(client_api.get("/client/token", token=minted["token"]), 401, "expired_api_key")


def test_a_revoke_over_the_api_is_audited_with_its_address_and_the_token_that_did_it(
    api, api_key, minted, project, user
):
    """The revoke's audit event kept neither the caller's address nor which key revoked
    it ("via": "api"), where a mint or a deploy over /v1 keeps both: a leaked key ending
    the project's browsers' tokens could not be told apart from the project's own."""
    api.send("DELETE", f"/v1/client-tokens/{minted['id']}", headers={"User-Agent": "ops/1.0"})
    event = AuditEvent.objects.get(action="client_token.revoked")
    assert (event.project, event.actor, event.target_label) == (project, None, minted["id"])
    assert (event.ip_address, event.user_agent) == ("127.0.0.1", "ops/1.0")
    assert event.metadata == {"via": str(api_key[0])}

    pat, secret = personal_token_create(user=user, name="Ops", permissions=["agents"])
    by_pat = assert_ok(mint(api), 201)
    headers = {"X-Project": project.slug}
    api.send("DELETE", f"/v1/client-tokens/{by_pat['id']}", token=secret, headers=headers)
    event = AuditEvent.objects.filter(action="client_token.revoked").latest("id")
    assert (event.actor, event.ip_address, event.metadata) == (user, "127.0.0.1", {"via": str(pat)})


def test_only_the_minting_project_can_delete_a_client_token(minted, make_user, make_key):
    other_owner = make_user(email="other@example.com")
    _, other_key = make_key(Project.objects.for_user(other_owner).get(), name="Other")
    response = Api(Client(), other_key).send("DELETE", f"/v1/client-tokens/{minted['id']}")
    assert_error(response, 404, "not_found")
    assert ClientToken.objects.get(public_id=minted["id"]).revoked_at is None


def test_client_token_calls_are_logged_against_the_token_and_its_key(client_api, minted, api_key):
    client_api.post("/client/agents/my-agent/invoke", {"prompt": "hi"}, token=minted["token"])
    row = UsageRecord.objects.get(path="/client/agents/my-agent/invoke")
    assert row.client_token.public_id == minted["id"]
    assert row.api_key == api_key[0]
    assert row.token_kind == "client_token"
    assert row.status == 200


class TestCors:
    """The Client API answers browsers on the project's allowed origins, and only them."""

    @pytest.fixture(autouse=True)
    def allow(self, project):
        AllowedOrigin.objects.create(project=project, origin=ORIGIN)

    def preflight(self, origin):
        return Client().options(
            "/client/agents/my-agent/invoke",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )

    def test_a_preflight_from_an_allowed_origin_is_answered(self):
        response = self.preflight(ORIGIN)
        assert response.status_code == 204
        assert response["Access-Control-Allow-Origin"] == ORIGIN
        assert "POST" in response["Access-Control-Allow-Methods"]
        assert "Authorization" in response["Access-Control-Allow-Headers"]
        assert "Origin" in response["Vary"]

    def test_a_preflight_from_another_origin_gets_no_cors_headers(self):
        response = self.preflight("https://evil.example.net")
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response

    def test_an_allowed_origin_gets_the_answer_with_cors_headers(self, client_api, minted):
        response = client_api.get(
            "/client/token", token=minted["token"], headers={"Origin": ORIGIN}
        )
        assert_ok(response)
        assert response["Access-Control-Allow-Origin"] == ORIGIN
        assert "X-Request-Id" in response["Access-Control-Expose-Headers"]
        assert "Idempotent-Replayed" in response["Access-Control-Expose-Headers"]

    def test_another_origin_is_refused_before_the_agent_runs(self, client_api, minted):
        response = client_api.post(
            "/client/agents/my-agent/invoke",
            {"prompt": "hi"},
            token=minted["token"],
            headers={"Origin": "https://evil.example.net"},
        )
        assert_error(response, 403, "insufficient_permissions")
        assert "Access-Control-Allow-Origin" not in response
        assert not Execution.objects.exists()

    def test_an_origin_of_another_project_does_not_open_this_one(
        self, client_api, minted, make_user
    ):
        other = Project.objects.for_user(make_user(email="o@example.com")).get()
        AllowedOrigin.objects.create(project=other, origin="https://other.example.org")
        assert self.preflight("https://other.example.org").status_code == 204
        response = client_api.get(
            "/client/token", token=minted["token"], headers={"Origin": "https://other.example.org"}
        )
        assert_error(response, 403, "insufficient_permissions")

    def test_a_deleted_projects_origin_is_no_longer_approved(self, project, user):
        project_delete(project=project, by=user)
        response = self.preflight(ORIGIN)
        assert response.status_code == 403
        assert "Access-Control-Allow-Origin" not in response

    def test_a_refusal_naming_no_project_is_readable_only_where_a_preflight_is_answered(self):
        for origin, readable in ((ORIGIN, True), ("https://evil.example.net", False)):
            response = Client().get("/client/token", headers={"Origin": origin})
            assert_error(response, 401, "missing_api_key")
            assert ("Access-Control-Allow-Origin" in response) is readable, origin
            assert "Access-Control-Allow-Credentials" not in response
            assert "Origin" in response["Vary"]

    def test_a_preflight_to_a_path_that_does_not_exist_is_answered_only_for_allowed_origins(
        self,
    ):
        for origin, status in ((ORIGIN, 204), ("https://evil.example.net", 403)):
            response = Client().options(
                "/client/agent/my-agent/invoke",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert response.status_code == status, origin
            assert ("Access-Control-Allow-Origin" in response) is (status == 204)

    def test_v1_never_sends_cors_allow_headers(self, api):
        response = api.get("/v1/agents", headers={"Origin": ORIGIN})
        assert response.status_code == 200
        assert not [h for h in response.headers if h.lower().startswith("access-control-")]
        preflight = Client().options("/v1/agents", headers={"Origin": ORIGIN})
        assert "Access-Control-Allow-Origin" not in preflight


def test_a_key_limited_to_some_agents_revokes_only_the_client_tokens_it_minted(
    api, minted, make_key, project
):
    _, scoped_secret = make_key(project, name="Widget", agent_names=["my-agent"])
    scoped = Api(Client(), scoped_secret)
    response = scoped.send("DELETE", f"/v1/client-tokens/{minted['id']}")
    assert_error(response, 404, "not_found")  # as if it were none: its id is not confirmed
    assert ClientToken.objects.get(public_id=minted["id"]).revoked_at is None
    own = assert_ok(mint(scoped), 201)
    assert scoped.send("DELETE", f"/v1/client-tokens/{own['id']}").status_code == 204
    # A key for every agent still revokes any of the project's client tokens.
    assert api.send("DELETE", f"/v1/client-tokens/{own['id']}").status_code == 204
    assert api.send("DELETE", f"/v1/client-tokens/{minted['id']}").status_code == 204


@pytest.mark.parametrize("origin", [ORIGIN, "https://evil.example.net"])
def test_a_preflights_answer_carries_no_store_as_the_description_says_every_answer_does(
    project, origin
):
    AllowedOrigin.objects.create(project=project, origin=ORIGIN)
    response = Client().options(
        "/client/agents/my-agent/invoke",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code in (204, 403)
    assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize("field", ["context", "serverContext"])
@pytest.mark.parametrize(
    "holding",
    [
        lambda secret: {"apiKey": secret},
        lambda secret: {"env": {"REMINIX": f"Bearer {secret}"}},
        lambda secret: {secret: 1},
        lambda secret: {"list": ["a", secret.upper()[:11] + secret[11:]]},
    ],
)
def test_a_context_holding_a_token_is_refused_naming_the_field(
    api, api_key, signed_in, project, field, holding
):
    """A backend that spreads its settings into the context put its own API key there: it
    was stored as it came, handed to the browser by GET /client/token, shown to every
    member on the Client tokens page, and (serverContext) to the agent, whose echo answers
    the browser with it. A token is never kept where it would be shown (the contract)."""
    _, secret = api_key
    body = {"context": {}, field: holding(secret)}
    error = assert_error(api.post("/v1/client-tokens", body), 400, "invalid_field_value")
    assert field in error["message"] and "token" in error["message"]
    assert secret[11:] not in json.dumps(error)
    assert not ClientToken.objects.exists()
    page = signed_in.get(f"/projects/{project.slug}/settings/client-tokens/")
    assert secret[11:] not in page.content.decode()


@pytest.mark.parametrize("field", ["context", "serverContext"])
@pytest.mark.parametrize(
    "holding",
    [
        lambda secret: {"reminix_sk_": secret[11:]},
        lambda secret: {"keyPrefix": "reminix_sk_", "keySecret": secret[11:]},
        lambda secret: {"apiKey": secret[11:]},
        lambda secret: {"head": secret[:20], "tail": [secret[20:]]},
        lambda secret: {secret[:20]: secret[20:]},
    ],
)
def test_a_context_holding_a_token_in_pieces_is_refused(api, api_key, field, holding):
    """A token's prefix in one string and the rest in another (a key and its value, two
    settings), or its 36 characters without the prefix, which anyone who reads them can
    use: each was minted (201) and kept whole for the browser and the Client tokens page.
    The rest of a token is known by its checksum (apikeys.tokens), whole in one string or
    across the strings of the context in order."""
    _, secret = api_key
    body = {"context": {}, field: holding(secret)}
    error = assert_error(api.post("/v1/client-tokens", body), 400, "invalid_field_value")
    assert field in error["message"] and "token" in error["message"]
    assert not ClientToken.objects.exists()


def test_a_context_naming_a_tokens_hint_or_prefix_is_taken(api):
    """What is not a secret stays: a hint's four characters, a prefix in a sentence."""
    context = {"key": "reminix_sk_AbCd…wxyz", "note": "our reminix_ct_ tokens"}
    assert_ok(mint(api, context=context, serverContext=context), 201)
    # Nor an id of a token's length whose last six characters are no checksum of it, or a
    # prefix beside a word.
    context = {"sessionId": "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z0123", "kind": "reminix_sk_"}
    assert_ok(mint(api, context={**context, "env": "production"}), 201)
