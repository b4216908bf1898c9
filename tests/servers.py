"""Real servers for the tests that need more than one process: gunicorn instances (as
`make serve` runs them) and the usage ingest, on a database and a Redis of their own.

The pytest database is private to the test process (SQLite's is in memory), so these
servers get their own: a SQLite file, or a PostgreSQL database of their own when the
suite runs on PostgreSQL. They are driven from outside, over HTTP, like a client would.
"""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import IO
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
OWNER = "owner@example.com"


def require_redis() -> None:
    """Skip the calling test without Redis on 127.0.0.1:6379; in CI, fail instead."""
    import pytest
    import redis

    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/14").ping()
    except redis.RedisError as unavailable:
        if os.environ.get("CI"):
            pytest.fail(f"Redis is not running on 127.0.0.1:6379 ({unavailable})")
        pytest.skip(f"Redis is not running on 127.0.0.1:6379 ({unavailable})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


GUNICORN = [sys.executable, "-m", "gunicorn", "reminix_dashboard.wsgi:application"]


@contextmanager
def gunicorn(env: dict[str, str], *, stderr: int | IO[bytes] = subprocess.DEVNULL) -> Iterator[int]:
    """gunicorn as `make serve` starts it (gunicorn.conf.py read from the repository's
    root), with exactly `env` and PORT set to a free loopback port: the port, once it
    takes connections. Stopped at the end."""
    port = free_port()
    process = subprocess.Popen(
        GUNICORN, cwd=ROOT, env={**env, "PORT": str(port)}, stdout=subprocess.DEVNULL, stderr=stderr
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, "gunicorn exited while starting"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


@dataclass
class Deployment:
    """A database with a migrated schema, a project, its owner and an API key."""

    env: dict[str, str]
    slug: str
    token: str
    tmp: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def manage(self, *args: str, **extra_env: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip()

    def new_key(self, name: str = "load") -> str:
        return self.manage("createapikey", "--project", self.slug, "--name", name).splitlines()[-1]

    def serve(self, *, workers: int = 2, **extra_env: str) -> Server:
        port = free_port()
        log = self.tmp / f"gunicorn-{port}.log"
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "reminix_dashboard.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--access-logfile",
                str(log),
                "--access-logformat",
                '%(h)s "%(m)s %(U)s" %(s)s %(M)sms',
                "--error-logfile",
                str(self.tmp / f"gunicorn-{port}.errors"),
                "--graceful-timeout",
                "10",
            ],
            cwd=ROOT,
            env={**self.env, **extra_env, "PORT": str(port)},
            start_new_session=True,
        )
        self.processes.append(process)
        server = Server(port, process, log)
        server.wait_until_up()
        return server

    def ingest(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "ingest_usage"],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def scheduler(self, **extra_env: str) -> subprocess.Popen[bytes]:
        """`manage.py run_scheduler`, as `make run` and `make serve` start it."""
        process = subprocess.Popen(
            [sys.executable, "manage.py", "run_scheduler", "--tick", "0.5"],
            cwd=ROOT,
            env={**self.env, **extra_env},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """The rows `sql` reads from this deployment's database, read from this process: a
        `manage.py shell` for it was a Django start, 1 to 2 s on a loaded machine. On
        PostgreSQL straight to the server (not through DATABASE_URL's port, a fault proxy
        a test may have dropped)."""
        database_url = self.env["DATABASE_URL"]
        if database_url.startswith("sqlite:///"):
            with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as db:
                return list(db.execute(sql).fetchall())
        import psycopg

        name = urlsplit(database_url).path
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432{name}") as c:
            return list(c.execute(sql).fetchall())

    def usage_rows(self) -> int:
        return int(
            self.manage(
                "shell",
                "-c",
                "from usage.models import UsageRecord; print(UsageRecord.objects.count())",
            ).splitlines()[-1]
        )


@dataclass
class Answer:
    """One HTTP answer from a test server, with when the request started and finished
    (time.monotonic()), so tests can order it against what they did meanwhile."""

    status: int
    body: bytes
    headers: dict[str, str]
    started: float
    finished: float

    def json(self) -> dict[str, object]:
        return dict(json.loads(self.body))


@dataclass
class Server:
    """One gunicorn of a Deployment, on its own port, with its access log; request() calls it
    over a connection of its own."""

    port: int
    process: subprocess.Popen[bytes]
    access_log: Path

    def wait_until_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited while starting"
            try:
                self.request("GET", "/v1/agents")
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"no server on port {self.port} after {timeout} s")

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            return Answer(
                response.status,
                data,
                {k.lower(): v for k, v in response.getheaders()},
                started,
                time.monotonic(),
            )
        finally:
            connection.close()

    def invoke(self, token: str, prompt: str = "hi") -> Answer:
        return self.request(
            "POST",
            "/v1/agents/my-agent/invoke",
            json.dumps({"prompt": prompt}).encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )


class Browser:
    """A signed-in person on one server: cookies, and the CSRF token of the last form."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.cookies: dict[str, str] = {}

    def _headers(self) -> dict[str, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        return {"Cookie": cookie, "Host": f"127.0.0.1:{self.server.port}"}

    def _keep_cookies(self, answer: Answer) -> None:
        raw = answer.headers.get("set-cookie")
        if raw:
            for name, morsel in SimpleCookie(raw).items():
                self.cookies[name] = morsel.value

    def get(self, path: str) -> Answer:
        answer = self.server.request("GET", path, headers=self._headers())
        self._keep_cookies(answer)
        return answer

    def post_form(self, path: str, form_page: str, data: dict[str, str]) -> Answer:
        page = self.get(form_page).body.decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, f"no CSRF token on {form_page}"
        body = urlencode({**data, "csrfmiddlewaretoken": html.unescape(token.group(1))})
        headers = {
            **self._headers(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Referer": f"http://127.0.0.1:{self.server.port}{form_page}",
        }
        answer = self.server.request("POST", path, body.encode(), headers)
        self._keep_cookies(answer)
        return answer

    def sign_in(self, email: str = OWNER, password: str = PASSWORD) -> None:
        answer = self.post_form(
            "/account/login/", "/account/login/", {"username": email, "password": password}
        )
        assert answer.status == 302, answer.body[:300]


@dataclass(frozen=True)
class Prepared:
    """A database migrated once, holding the owner, a project and its API key, and the
    static files collected once: what every deployment of the session starts from, as a
    copy. Migrating, collecting and the three setup commands are ~15 s of processes; a copy
    is a fraction of a second, and each deployment still has a database of its own."""

    postgresql: bool
    database: str  # a SQLite file, or the name of a PostgreSQL template database
    static: Path
    token_hash_key: str
    slug: str
    token: str


def _settings(database_url: str, static: Path, token_hash_key: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "PYTEST", "REDIS"))
    }
    return env | dict(
        DJANGO_SETTINGS_MODULE="reminix_dashboard.settings.base",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(50),
        TOKEN_HASH_KEY=token_hash_key,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        REDIS_URL="redis://127.0.0.1:6379/14",
        REDIS_KEY_PREFIX=f"test:{secrets.token_hex(4)}:",
        USAGE_FLUSH_SECONDS="0.2",
        CONN_MAX_AGE="60",
        EMAIL_URL="dummymail://",
        LOG_LEVEL="WARNING",
        # Collected for these servers (DEBUG off serves only collected, hashed files): a
        # fresh clone has none.
        STATIC_ROOT=str(static),
    )


@contextmanager
def prepared(tmp: Path, *, postgresql: bool) -> Iterator[Prepared]:
    """The database and static files every deployment() copies (the suite makes them once,
    in the prepared_deployment fixture); the database is dropped at the end."""
    name = f"reminix_servers_template_{secrets.token_hex(4)}"
    if postgresql:
        database, database_url = name, f"postgres://postgres@127.0.0.1:5432/{name}"
        _postgres(f'CREATE DATABASE "{name}"')
    else:
        database = str(tmp / "template.sqlite3")
        database_url = f"sqlite:///{database}"
    token_hash_key = secrets.token_urlsafe(40)
    setup = Deployment(
        env=_settings(database_url, tmp / "static", token_hash_key), slug="", token="", tmp=tmp
    )
    try:
        # The five commands in one process: each process of its own was ~2 s of Django
        # starting (more on a loaded machine), five times a session.
        slug, token = setup.manage(
            "shell",
            "-c",
            "import io\n"
            "from django.core.management import call_command\n"
            "def run(*args):\n"
            "    out = io.StringIO()\n"
            "    call_command(*args, stdout=out)\n"
            "    return out.getvalue().strip()\n"
            "run('migrate', '--noinput', '-v', '0')\n"
            "run('collectstatic', '--noinput', '-v', '0')\n"
            f"run('createsuperuser', '--noinput', '--email', {OWNER!r})\n"
            f"slug = run('createproject', '--owner', {OWNER!r}, 'Servers')\n"
            "print(slug)\n"
            "print(run('createapikey', '--project', slug, '--name', 'load').splitlines()[-1])",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        ).splitlines()[-2:]
        yield Prepared(postgresql, database, tmp / "static", token_hash_key, slug, token)
    finally:
        if postgresql:
            _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def deployment(
    tmp: Path, prepared: Prepared, *, postgresql_port: int = 5432, **extra_env: str
) -> Iterator[Deployment]:
    """A migrated database of its own (a copy of `prepared`'s), a signed-up owner, a project
    and an API key. `postgresql_port`: where the servers reach PostgreSQL (a fault proxy,
    say); `extra_env` overrides any setting below (REDIS_URL included)."""
    name = f"reminix_servers_{secrets.token_hex(4)}"
    if prepared.postgresql:
        database_url = f"postgres://postgres@127.0.0.1:{postgresql_port}/{name}"
        _postgres(f'CREATE DATABASE "{name}" TEMPLATE "{prepared.database}"')
    else:
        copy = tmp / "servers.sqlite3"
        with (
            closing(sqlite3.connect(prepared.database)) as source,
            closing(sqlite3.connect(copy)) as target,
        ):
            source.backup(target)
        database_url = f"sqlite:///{copy}"
    env = _settings(database_url, prepared.static, prepared.token_hash_key) | extra_env
    created = Deployment(env=env, slug=prepared.slug, token=prepared.token, tmp=tmp)
    try:
        yield created
    finally:
        created.stop_all()
        if prepared.postgresql:
            _postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres(sql: str) -> None:
    import psycopg

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute(sql)


def path_of(url: str) -> str:
    return urlsplit(url).path
