"""What gunicorn refuses before the application sees it (a header too large, a bare line
break or a NUL in a header, a request line too long) is answered in the contract's
envelope, as every other error is, and without the request's text: gunicorn's own answer
was an HTML page that quoted the offending line, token and all."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import gunicorn as served_by_gunicorn

TOKEN = "reminix_ct_" + "A1b2C3d4E5" * 3 + "xYz123"


@pytest.fixture(scope="module")
def gunicorn_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gunicorn")


@pytest.fixture(scope="module")
def gunicorn_log(gunicorn_files: Path) -> Path:
    """Where the gunicorn below writes its error log (stderr, as make serve leaves it)."""
    return gunicorn_files / "error.log"


@pytest.fixture(scope="module")
def gunicorn(gunicorn_files: Path, gunicorn_log: Path) -> Iterator[int]:
    """gunicorn with gunicorn.conf.py, as make serve starts it; no request reaches the
    application here, so its database is never opened."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "PYTEST", "REDIS"))
    } | {
        "DEBUG": "true",
        "WEB_CONCURRENCY": "1",
        "DATABASE_URL": f"sqlite:///{gunicorn_files / 'unused.sqlite3'}",
    }
    with gunicorn_log.open("wb") as log, served_by_gunicorn(env, stderr=log) as port:
        yield port


def _send(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


REFUSED = pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (
            b"GET /client/token HTTP/1.1\r\nHost: x\r\nOrigin: https://"
            + b"a" * 20_000
            + b"\r\n\r\n",
            431,
        ),
        (
            b"GET /client/token HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + TOKEN.encode()
            + b"\r\r\n\r\n",
            400,
        ),
        (
            b"OPTIONS /client/token HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.com\x00\r\n\r\n",
            400,
        ),
        (b"GET /client/" + TOKEN.encode() + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /client/token HTTP/1.1\r\nHost: x\r\nX-" + TOKEN.encode() + b"\x01: 1\r\n\r\n", 400),
        (b"GET /v1/agents/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    ],
    ids=[
        "origin-too-large",
        "bearer-with-cr",
        "origin-with-nul",
        "path-with-control",
        "header-name-with-token",
        "path-too-long",
    ],
)


@REFUSED
def test_what_gunicorn_refuses_is_answered_in_the_envelope_without_the_request(
    gunicorn, request_bytes, status
):
    answered, headers, body = _send(gunicorn, request_bytes)
    assert answered == status
    assert headers["content-type"] == "application/json"
    assert headers["cache-control"] == "no-store"
    error = json.loads(body)["error"]
    assert error["status"] == status
    assert error["code"] == "invalid_request"
    assert error["requestId"] == headers["x-request-id"]
    assert error["requestId"].startswith("req_")
    assert error["message"]
    assert b"A1b2C3d4E5" not in body


@REFUSED
def test_the_error_logs_line_for_a_refusal_carries_the_request_id_of_its_answer(
    gunicorn, gunicorn_log, request_bytes, status
):
    """A customer reports the requestId of the answer; the operator finds gunicorn's own
    line for it ("Invalid request from ip=…"), which was logged without one."""
    _, headers, _ = _send(gunicorn, request_bytes)
    request_id = headers["x-request-id"]
    lines = [line for line in gunicorn_log.read_text("utf-8", "replace").splitlines()]
    logged = [line for line in lines if request_id in line]
    assert len(logged) == 1, lines[-5:]
    assert "[WARNING]" in logged[0] and "Invalid request" in logged[0]
    assert "A1b2C3d4E5" not in logged[0]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; x*=bogus''a",
        "application/json; charset*=undefined''a",
        "application/json; charset=hex",
        "application/json; charset=undefined",
    ],
)
def test_a_content_type_django_cannot_read_is_answered_by_the_api(gunicorn, content_type):
    """Django reads the Content-Type as it makes the request, before any middleware: a
    parameter in RFC 2231's form with a charset Python does not know, or a charset that
    decodes no text (with a query string to decode), raised there, and every such call,
    on any path and without a token, was a 500 and a traceback in the error log."""
    answered, headers, body = _send(
        gunicorn,
        b"GET /v1/agents?limit=1 HTTP/1.0\r\nHost: localhost\r\n"
        + f"Authorization: Bearer reminix_sk_x\r\nContent-Type: {content_type}\r\n\r\n".encode(),
    )
    assert answered == 401, body
    assert json.loads(body)["error"]["code"] == "invalid_api_key"
