"""API calls skip the dashboard's middleware, and keep the headers an API should send."""

from __future__ import annotations

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLResolver, include, path
from django.views.decorators.csrf import csrf_exempt

from tests.api.assertions import assert_error, assert_ok

INVOKE = "/v1/agents/my-agent/invoke"


def test_a_v1_call_never_touches_the_session_store_or_the_user_table(api, user, signed_in):
    # A browser that is signed in to the dashboard sends its session cookie along.
    api.client.cookies = signed_in.cookies
    with CaptureQueriesContext(connection) as queries:
        response = api.post(INVOKE, {"prompt": "hi"})
    assert_ok(response)
    touched = " ".join(q["sql"] for q in queries.captured_queries)
    assert "django_session" not in touched
    assert "accounts_user" not in touched
    assert "axes_" not in touched
    assert "Set-Cookie" not in response and not response.cookies


def test_an_api_answer_has_no_dashboard_headers_but_keeps_nosniff_and_no_store(api):
    response = api.post(INVOKE, {"prompt": "hi"})
    assert_ok(response)
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "no-store"
    assert "Content-Security-Policy" not in response
    assert "X-Frame-Options" not in response
    assert "Vary" not in response or "Cookie" not in response["Vary"]


def test_hsts_is_sent_on_https_in_production(api, settings):
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    settings.SECURE_HSTS_PRELOAD = False
    response = api.post(INVOKE, {"prompt": "hi"}, secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"


def test_plain_http_in_production_is_refused_not_redirected(api, settings):
    settings.SECURE_SSL_REDIRECT = True
    error = assert_error(api.post(INVOKE, {"prompt": "hi"}), 403, "https_required")
    assert "revoke" in error["message"]
    assert_ok(api.post(INVOKE, {"prompt": "hi"}, secure=True))


def test_the_dashboard_still_redirects_plain_http_in_production(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/account/login/")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")


@pytest.mark.parametrize("host", ["evil.example.com", "127.0.0.1:8000\r\nX: y"])
def test_an_unknown_host_is_answered_in_the_envelope(db, host):
    response = Client(HTTP_HOST=host).get("/v1/agents")
    assert_error(response, 400, "invalid_request")


@pytest.fixture
def matched(monkeypatch) -> list[str]:
    """The paths matched against the URLconf from here on, in order."""
    paths: list[str] = []
    resolve = URLResolver.resolve

    def counted(self: URLResolver, path: str) -> object:
        paths.append(path)
        return resolve(self, path)

    monkeypatch.setattr(URLResolver, "resolve", counted)
    return paths


def test_each_api_path_is_matched_against_the_urlconf_once(api, matched):
    # A client calls the same few paths over and over: the middleware keeps their matches.
    for _ in range(3):
        assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    assert matched == [INVOKE[1:]]
    # Another agent's path is a match of its own, with its own name.
    other = api.post("/v1/agents/other/invoke", {"prompt": "hi"})
    assert "'other'" in assert_error(other, 404, "agent_not_found")["message"]
    assert_ok(api.post(INVOKE, {"prompt": "hi"}))
    assert len(matched) == 2


def test_a_long_api_path_is_matched_each_time_and_not_kept(api, matched):
    # Anyone can send paths without end: only short ones (every real one) are kept.
    long_path = f"/v1/agents/{'a' * 300}/invoke"
    for _ in range(2):
        assert_error(api.post(long_path, {"prompt": "hi"}), 404, "agent_not_found")
    assert len(matched) == 2


@pytest.mark.parametrize("spelt", ["as is", "escaped", "fullwidth"])
def test_a_path_holding_a_token_is_matched_each_time_and_not_kept(api, matched, spelt):
    # A key pasted into a path (the agent's name matches anything) must not stay in the
    # worker's memory as the key of a kept match: a token is never kept in a cache.
    secret = api.token
    if spelt == "escaped":  # one escape left once the path is decoded
        secret = secret.replace("_", "%255F")
    elif spelt == "fullwidth":
        wide = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in secret[:8])
        secret = wide + secret[8:]
    for _ in range(2):
        answer = api.post(f"/v1/agents/{secret}/invoke", {"prompt": "hi"})
        assert_error(answer, 404, "agent_not_found")
    assert len(matched) == 2


# An API URLconf with a path of its own beside the includes (the test below).
urlpatterns = [
    path("v1/ping", csrf_exempt(lambda request: HttpResponse(b"pong"))),
    path("v1/", include(("reminix_dashboard.api_urls", "api"))),
]


def test_a_path_of_the_api_urlconf_itself_is_answered_like_its_includes(api, settings):
    # The middleware asks the URLconf's entries one by one: a path() answers None where an
    # include raises Resolver404, and neither may end the search.
    settings.API_URLCONF = __name__
    assert api.get("/v1/ping").content == b"pong"
    assert_ok(api.post(INVOKE, {"prompt": "hi"}))


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        # A base URL with a trailing slash before "/v1/…": the dashboard answered these, in
        # HTML (a POST: its CSRF page), and ran its middleware on the bearer token's call.
        ("post", "//v1/agents/my-agent/invoke", "not_found"),
        ("get", "//v1", "not_found"),
        ("get", "///v1/agents", "not_found"),
        ("get", "//client/token", "not_found"),
    ],
)
def test_a_doubled_slash_before_an_api_path_is_answered_in_the_envelope(api, method, path, code):
    # PATH_INFO as a server passes it: the test client would read "//v1/…" as a host.
    response = getattr(api.client, method)(
        "/placeholder",
        PATH_INFO=path,
        HTTP_AUTHORIZATION=f"Bearer {api.token}",
        content_type="application/json",
    )
    assert_error(response, 404, code)
    assert response["X-Content-Type-Options"] == "nosniff"


@pytest.fixture
def behind_a_proxy(settings):
    """Production's settings: X-Forwarded-Proto says the scheme, 10/8 are our proxies."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]


def test_https_claimed_by_a_peer_that_is_no_proxy_of_ours_is_not_believed(api, behind_a_proxy):
    """A client reaching gunicorn directly could say X-Forwarded-Proto: https and so send
    its token in clear unrefused, or be answered a dashboard page over http."""
    claimed = {"X-Forwarded-Proto": "https"}
    api.client.defaults["REMOTE_ADDR"] = "203.0.113.5"
    assert_error(api.post(INVOKE, {"prompt": "hi"}, headers=claimed), 403, "https_required")
    page = Client(REMOTE_ADDR="203.0.113.5").get("/account/login/", headers=claimed)
    assert page.status_code == 301
    assert page["Location"].startswith("https://")


def test_https_said_by_a_trusted_proxy_is_believed(api, behind_a_proxy, db):
    said = {"X-Forwarded-Proto": "https"}
    for proxy in ("10.0.0.2", "::ffff:10.0.0.2"):
        api.client.defaults["REMOTE_ADDR"] = proxy
        assert_ok(api.post(INVOKE, {"prompt": "hi"}, headers=said))
        assert Client(REMOTE_ADDR=proxy).get("/account/login/", headers=said).status_code == 200


def test_without_trusted_proxies_x_forwarded_proto_is_believed_as_before(api, settings, db):
    """check --deploy warns of this setup (core.W004)."""
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.TRUSTED_PROXIES = []
    said = {"X-Forwarded-Proto": "https"}
    api.client.defaults["REMOTE_ADDR"] = "203.0.113.5"
    assert_ok(api.post(INVOKE, {"prompt": "hi"}, headers=said))
    assert Client(REMOTE_ADDR="203.0.113.5").get("/account/login/", headers=said).status_code == 200
