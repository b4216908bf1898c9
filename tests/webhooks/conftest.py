"""A real HTTP receiver on 127.0.0.1, and alerts to deliver."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from accounts.models import Project, User
from alerts.models import Flag
from apikeys.models import ApiKey
from webhooks.models import WebhookEndpoint
from webhooks.services import webhook_create


@dataclass
class Received:
    """One POST the test receiver got: its path, headers, raw body (to check the signature
    over) and when it arrived."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)  # when it arrived


@dataclass
class Receiver:
    """What it answers (status, or the one `statuses` gives its path; after `delay`
    seconds) and what it got."""

    port: int = 0
    status: int = 204
    statuses: dict[str, int] = field(default_factory=dict)
    # Requests being answered at once, and the most there ever were, by path.
    answering: dict[str, int] = field(default_factory=dict)
    most_at_once: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    delay: float = 0.0
    # Answer as many web frameworks do a path they do not know: "Cannot POST <path>".
    echo_path: bool = False
    # Or answer with these bytes.
    answer: bytes = b"ok"
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def local_delivery(settings) -> None:
    """Tests deliver over plain http to 127.0.0.1, which nothing else may."""
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_LOOPBACK = True


@pytest.fixture
def receiver(local_delivery: None) -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with state.lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                now_answering = state.answering.get(self.path, 0) + 1
                state.answering[self.path] = now_answering
                state.most_at_once[self.path] = max(
                    now_answering, state.most_at_once.get(self.path, 0)
                )
            if state.delay:
                time.sleep(state.delay)
            with state.lock:
                state.answering[self.path] -= 1
            answer = f"Cannot POST {self.path}".encode() if state.echo_path else state.answer
            self.send_response(state.statuses.get(self.path, state.status))
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.port = server.server_address[1]
    # shutdown() waits for the loop to look up: every 0.5 s by default, half a second
    # at the end of each test that had one.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
    )
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_url() -> Iterator[Callable[..., str]]:
    """Makes addresses that accept a connection and never answer."""
    holes: list[socket.socket] = []

    def make(path: str = "/silent") -> str:
        hole = socket.socket()
        hole.bind(("127.0.0.1", 0))
        hole.listen(1)
        holes.append(hole)
        return f"http://127.0.0.1:{hole.getsockname()[1]}{path}"

    yield make
    for hole in holes:
        hole.close()


@pytest.fixture
def make_endpoint(user: User) -> Callable[..., tuple[WebhookEndpoint, str]]:
    def make(
        project: Project, url: str, format: str = "generic", min_severity: str = "low"
    ) -> tuple[WebhookEndpoint, str]:
        owner = project.memberships.filter(role="owner").first()
        return webhook_create(
            project=project,
            url=url,
            format=format,
            min_severity=min_severity,
            created_by=owner.user if owner else user,
        )

    return make


@pytest.fixture
def make_flag() -> Callable[..., Flag]:
    counter = iter(range(1, 10_000))

    def make(
        project: Project,
        api_key: ApiKey | None = None,
        severity: str = "high",
        summary: str = "Revoked key tried 3 times",
        kind: str = Flag.Kind.ENDED_TOKEN_USED,
        **fields: object,
    ) -> Flag:
        now = timezone.now()
        return Flag.objects.create(
            project=project,
            api_key=api_key,
            kind=kind,
            severity=severity,
            dedupe_key=f"test:{next(counter)}",
            summary=summary,
            first_seen=now,
            last_seen=now,
            **fields,
        )

    return make
