"""The ASGI entry point (reminix_dashboard/asgi.py, for servers that speak ASGI) hands
Django a Content-Type it can read, as the WSGI one does (test_refused_by_gunicorn.py):
Django reads the header's parameters as it makes the request, before any middleware."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest

from reminix_dashboard.asgi import application


def _sent(method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""):
    """The status and body reminix_dashboard.asgi answers a request with."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("localhost", 80),
    }
    answer: dict[str, Any] = {"body": b""}
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client stays connected until the answer ends
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    # In a thread of its own, with its own event loop: the browser tests' Playwright keeps
    # one running in this thread, where neither asyncio.run nor async_to_sync may start one.
    thread = threading.Thread(target=asyncio.run, args=(application(scope, receive, send),))
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the ASGI application did not answer"
    return answer["status"], answer["body"]


@pytest.mark.parametrize(
    "content_type",
    ["application/json; x*=bogus''a", "application/json; charset*=undefined''a"],
)
def test_a_content_type_django_cannot_read_is_read_as_its_media_type(content_type):
    """Django reads the header's parameters as it makes the request, whatever the path:
    the API's public document stands for every path here (it reads no database)."""
    status, body = _sent("GET", "/v1/openapi.json", [(b"content-type", content_type.encode())])
    assert status == 200, body[:300]
    assert json.loads(body)["openapi"].startswith("3.")


CSRF = "A1b2C3d4E5" * 3 + "Zz"  # a CSRF secret, sent as the cookie and the form's field


def test_a_form_sent_in_a_charset_that_decodes_no_text_is_read_not_a_500():
    """A form's body is decoded with the charset its Content-Type names, once the CSRF
    check reads its token: "hex" raised there. (robots.txt takes GET alone, so the answer
    after the check is 405, with no database to read.)"""
    status, body = _sent(
        "POST",
        "/robots.txt",
        [
            (b"content-type", b"application/x-www-form-urlencoded; charset=hex"),
            (b"cookie", f"csrftoken={CSRF}".encode()),
        ],
        f"csrfmiddlewaretoken={CSRF}".encode(),
    )
    assert status == 405, body[:300]
