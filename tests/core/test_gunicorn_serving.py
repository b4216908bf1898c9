"""gunicorn as `make serve` runs it (gunicorn.conf.py read from the repository root), with
production's settings, driven over HTTP from this machine: what gunicorn itself decides
before Django sees a request."""

from __future__ import annotations

import http.client
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.accounts.test_security_headers import ROOT, production_env
from tests.servers import GUNICORN, free_port
from tests.servers import gunicorn as served_by_gunicorn

# Well formed (prefix, length, checksum) and unknown: only its scheme matters here.
TOKEN = "reminix_sk_" + "a" * 36


@contextmanager
def gunicorn(tmp_path: Path, **env: str) -> Iterator[int]:
    """One worker on a free loopback port; its port. No database or Redis is reached by
    the requests these tests send (answered before either is needed)."""
    settings = production_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        STATIC_ROOT=str(tmp_path / "static"),
        WEB_CONCURRENCY="1",
        **env,
    )
    settings.pop("REDIS_URL")
    with served_by_gunicorn(settings) as port:
        yield port


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """Status, Location and body of a GET from 127.0.0.1, for the dashboard's host."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "GET", path, headers={"Host": "dashboard.example.com", **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, response.getheader("Location", ""), response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "claim",
    [
        {"X-Forwarded-Proto": "https"},
        {"X-Forwarded-Ssl": "on"},
        {"X-Forwarded-Protocol": "ssl"},
    ],
    ids=lambda claim: next(iter(claim)),
)
@pytest.mark.same_on_every_database
def test_https_claimed_from_this_machine_is_not_believed_when_it_is_no_proxy_of_ours(
    tmp_path, claim
):
    """gunicorn believes these headers from 127.0.0.1 by its own default
    (forwarded_allow_ips) and set the request's scheme to https itself, under the app's
    TRUSTED_PROXIES: any process on the host could send a token in clear unrefused, or
    get a page over http unredirected. The proxies are the app's to name, nobody else's."""
    with gunicorn(tmp_path, TRUSTED_PROXIES="10.0.0.0/8") as port:
        status, _, body = get(port, "/v1/agents", {"Authorization": f"Bearer {TOKEN}", **claim})
        assert status == 403 and b'"https_required"' in body
        status, location, _ = get(port, "/robots.txt", claim)
        assert status == 301 and location.startswith("https://")


@pytest.mark.same_on_every_database
def test_https_said_by_a_proxy_of_ours_on_this_machine_is_still_believed(tmp_path):
    with gunicorn(tmp_path, TRUSTED_PROXIES="127.0.0.1") as port:
        said = {"X-Forwarded-Proto": "https"}
        status, _, body = get(port, "/v1/agents", {"Authorization": f"Bearer {TOKEN}", **said})
        assert status == 401 and b'"invalid_api_key"' in body
        assert get(port, "/robots.txt", said)[0] == 200


@pytest.mark.same_on_every_database
def test_a_body_sent_in_chunks_reaches_the_api_as_such_and_is_refused_411(tmp_path):
    """gunicorn hands the app a chunked body decoded, with Transfer-Encoding and without a
    Content-Length, and Django reads no body without one: the call acted as if it had
    none. Refused before the token is looked up (this one fails its checksum)."""
    with gunicorn(tmp_path, TRUSTED_PROXIES="127.0.0.1") as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            connection.request(
                "PUT",
                "/v1/agents/bot",
                body=iter([b'{"config": ', b'{"a": 1}}']),  # no length: sent in chunks
                headers={
                    "Host": "dashboard.example.com",
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/json",
                    "X-Forwarded-Proto": "https",
                },
                encode_chunked=True,
            )
            response = connection.getresponse()
            status, body = response.status, response.read()
        finally:
            connection.close()
    assert status == 411 and b'"invalid_request"' in body, (status, body)


@pytest.mark.same_on_every_database
def test_a_setting_it_cannot_use_stops_gunicorn_with_one_line_not_a_traceback(tmp_path):
    """Each worker printed a 25-line traceback of the settings' import, then gunicorn
    its own lines: the reason was the last of them, under Django's and gunicorn's code."""
    env = production_env(CONN_MAX_AGE="abc", PORT=str(free_port()), WEB_CONCURRENCY="1")
    run = subprocess.run(
        GUNICORN,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert "Traceback" not in run.stderr and "File " not in run.stderr, run.stderr
    # gunicorn prints the worker's reason and its line break in two writes, so the
    # arbiter's next log line may land between them: the reason starts its line.
    [reason] = [line for line in run.stderr.splitlines() if "CONN_MAX_AGE" in line]
    assert reason.startswith(
        "CONN_MAX_AGE must be a whole number from 0 to 1000000 (default 60); it is 'abc'."
    )


@pytest.mark.parametrize(
    ("statement_timeout", "least"), [(None, 30), ("30", 30), ("120", 120), ("0", 30)]
)
def test_a_worker_outlives_a_statement_at_its_time_limit(monkeypatch, statement_timeout, least):
    """A statement at DB_STATEMENT_TIMEOUT is cancelled and its request answered 503 with
    Retry-After; gunicorn's own timeout, 30 s like the statement's, killed the worker at
    the same moment, so the client got a reset connection (or the proxy's 502) instead,
    whichever came first."""
    import runpy

    if statement_timeout is None:
        monkeypatch.delenv("DB_STATEMENT_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("DB_STATEMENT_TIMEOUT", statement_timeout)

    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))

    assert config["timeout"] >= least + 10


@pytest.mark.parametrize(
    ("host", "bind"),
    [
        (None, "127.0.0.1:8123"),
        ("0.0.0.0", "0.0.0.0:8123"),
        ("::", "[::]:8123"),
        ("[::1]", "[::1]:8123"),
        # Set but empty is not set, as in make serve: gunicorn read '' as every interface.
        ("", "127.0.0.1:8123"),
    ],
)
def test_a_bare_gunicorn_binds_where_bind_host_says_as_make_serve_does(monkeypatch, host, bind):
    """The README has BIND_HOST=0.0.0.0 set in a container, and gunicorn.conf.py gives a
    bare `gunicorn reminix_dashboard.wsgi:application` PORT and WEB_CONCURRENCY from the
    environment as make serve does, but not BIND_HOST: started that way in a container,
    it listened on its loopback alone, and no request from outside reached it."""
    import runpy

    monkeypatch.setenv("PORT", "8123")
    if host is None:
        monkeypatch.delenv("BIND_HOST", raising=False)
    else:
        monkeypatch.setenv("BIND_HOST", host)

    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["bind"] == bind
