"""Shared fixtures: users and projects made through the same services the app uses."""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from itertools import count
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import IntegrityError, connection, models
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import Project, User
from accounts.services import project_create, user_sign_up
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from apikeys.services import (
    api_key_create,
    api_key_roll,
    api_key_suspend,
    personal_token_create,
)
from apikeys.tokens import TokenKind
from core.after_answer import drain
from tests.live_server import PooledWSGIServer
from tests.servers import Prepared, prepared
from usage.writer import UsageEntry

PASSWORD = "correct horse battery staple"
# What htmx sends with every request it makes.
HTMX = {"HX-Request": "true"}
_request_ids = count(1)


@pytest.fixture(scope="session", autouse=True)
def _flush_deletes_only_what_a_test_wrote() -> Iterator[None]:
    """The flush after a transactional test leaves content types and permissions as they
    are: its post_migrate signal would write the same rows back at once, some 90 statements
    each committed on its own (~0.3 s a test on PostgreSQL, ~0.02 s on SQLite).

    On PostgreSQL it also DELETEs from the tables that hold rows, not Django's TRUNCATE of
    every table. TRUNCATE makes new files for each table, index and usage partition (some
    500 relations) and cost ~2 s a test; a test fills a few tables. The end is the same:
    every table empty, sequences untouched. (The foreign keys are all DEFERRABLE INITIALLY
    DEFERRED, as Django makes them, and no table has a trigger, so the order of the deletes
    does not matter.) SQLite's flush is already a DELETE of each table."""
    from django.contrib.auth.models import Permission
    from django.contrib.contenttypes.models import ContentType
    from django.core.management.commands import flush as flush_command
    from django.db.backends.postgresql.base import DatabaseWrapper as PostgreSQLWrapper
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteWrapper
    from django.test.testcases import LiveServerThread

    PostgreSQL, SQLite = PostgreSQLWrapper.ops_class, SQLiteWrapper.ops_class
    truncate, delete = PostgreSQL.sql_flush, SQLite.sql_flush
    written_back = {ContentType._meta.db_table, Permission._meta.db_table}

    def postgresql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if reset_sequences or allow_cascade or not tables:
            return truncate(
                self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
            )
        _wait_for_other_threads_requests()
        quote = self.quote_name
        tables = [table for table in tables if table not in written_back]
        with self.connection.cursor() as cursor:
            cursor.execute(
                " UNION ALL ".join(
                    f"SELECT %s WHERE EXISTS (SELECT 1 FROM {quote(table)})" for table in tables
                ),
                tables,
            )
            filled = [row[0] for row in cursor.fetchall()]
        return [f"DELETE FROM {quote(table)};" for table in filled]

    def sqlite_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        _wait_for_other_threads_requests()
        if not (reset_sequences or allow_cascade):
            tables = [table for table in tables if table not in written_back]
        return delete(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )

    from django.core.signals import request_finished, request_started

    request_started.connect(_requests_under_way.started, dispatch_uid="tests-under-way")
    request_finished.connect(_requests_under_way.finished, dispatch_uid="tests-under-way")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(LiveServerThread, "server_class", PooledWSGIServer)
        # A thread of that server lives on after its request: once its client is gone it
        # answers none, even if Django never sent request_finished.
        patch.setattr(PooledWSGIServer, "idle", lambda server: _requests_under_way.finished())
        patch.setattr(PostgreSQL, "sql_flush", postgresql_flush)
        patch.setattr(SQLite, "sql_flush", sqlite_flush)
        patch.setattr(flush_command, "emit_post_migrate_signal", _post_migrate_when_needed())
        yield


@pytest.fixture(scope="session")
def live_server(django_db_setup: None, live_server: Any) -> Any:
    """pytest-django's live server, stopped before the test database is dropped: its
    threads keep their database connections between requests (tests/live_server.py), and
    a database with connections cannot be dropped. Without this the server was set up
    before the database when the first test to use the database was one of its own."""
    return live_server


class _RequestsUnderWay:
    """The threads answering a request now, from Django's request_started to its
    request_finished (sent once the server has written and closed the response; a thread
    whose client went away before that ends without it, and counts no more once ended)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.threads: set[threading.Thread] = set()

    def started(self, **kwargs: object) -> None:
        with self.lock:
            self.threads.add(threading.current_thread())

    def finished(self, **kwargs: object) -> None:
        with self.lock:
            self.threads.discard(threading.current_thread())

    def elsewhere(self) -> set[threading.Thread]:
        with self.lock:
            self.threads = {thread for thread in self.threads if thread.is_alive()}
            return self.threads - {threading.current_thread()}


_requests_under_way = _RequestsUnderWay()


def _wait_for_other_threads_requests(timeout: float = 10.0) -> None:
    """Before a flush: wait until no other thread (the live server's) is answering a
    request. Closing the browser's page stops the browser waiting, not the server, whose
    view goes on in its own thread; on SQLite's shared in-memory database that thread uses
    the test's own connection, and a flush while it still read a table failed ("database
    table is locked", twice in CI: an ERROR at one test's teardown, then the next test's
    user refused as a duplicate, the rows never deleted). On PostgreSQL a request ending
    after the flush could leave its rows for the next test."""
    deadline = time.monotonic() + timeout
    while busy := _requests_under_way.elsewhere():
        if time.monotonic() > deadline:
            raise AssertionError(f"still answering a request after {timeout:.0f} s: {busy}")
        time.sleep(0.01)


def _post_migrate_when_needed() -> Callable[..., None]:
    """The flush's post_migrate signal, sent only when it could write something: when a
    receiver other than Django's two is connected, or the content types or permissions
    are not as the last signal left them (a row added or deleted changes the count or the
    highest id). Otherwise its receivers only read, some 60 queries (~10 ms a test on
    SQLite, more over PostgreSQL's connection), to write nothing."""
    import weakref

    from django.contrib.auth.management import create_permissions
    from django.contrib.contenttypes.management import create_contenttypes
    from django.core.management.sql import emit_post_migrate_signal
    from django.db import connections
    from django.db.models.signals import post_migrate

    djangos = {create_permissions, create_contenttypes}
    left: dict[str, tuple[object, ...]] = {}

    def rows(database: str) -> tuple[object, ...]:
        with connections[database].cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT COUNT(*) FROM django_content_type),"
                " (SELECT MAX(id) FROM django_content_type),"
                " (SELECT COUNT(*) FROM auth_permission), (SELECT MAX(id) FROM auth_permission)"
            )
            return tuple(cursor.fetchone())

    def emit(verbosity: int, interactive: bool, db: str, **kwargs: object) -> None:
        receivers = {
            r[1]() if isinstance(r[1], weakref.ReferenceType) else r[1]
            for r in post_migrate.receivers
        }
        if receivers <= djangos and left.get(db) == rows(db):
            return
        emit_post_migrate_signal(verbosity, interactive, db, **kwargs)
        left[db] = rows(db)

    return emit


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Rate-limit counters live in the cache, and while it cannot count, in the process
    (core.counters): each test starts with none in either."""
    from django.core.cache import cache

    from core import counters

    cache.clear()
    counters._IN_PROCESS.clear()


class WindowClock:
    """The time module as the fixed-window counters see it in a test (rate limits per
    minute, throttles per hour or day): time() reads on from the UTC midnight after the test
    began, which starts a minute, an hour and a day at once. So whatever a test counts falls
    in one window, whatever the time of day. (At 23:59:59 a test's forty failed sign-ins were
    counted in two hours, and it found twice the audit rows one hour may write.)"""

    def __init__(self) -> None:
        real = time.time()
        self._shift = (real // 86400 + 1) * 86400 - real

    def time(self) -> float:
        return time.time() + self._shift

    def __getattr__(self, name: str) -> object:
        return getattr(time, name)


@pytest.fixture(autouse=True)
def window_clock(monkeypatch: pytest.MonkeyPatch) -> WindowClock:
    import api.callers
    import api.credentials
    import api.endpoint
    import api.rate_limits
    import core.counters

    clock = WindowClock()
    # Where the windows are counted, and where a refusal's Retry-After is worked out from them.
    for module in (core.counters, api.rate_limits, api.callers, api.endpoint, api.credentials):
        monkeypatch.setattr(module, "time", clock)
    return clock


class _HeldTimezone:
    """django.utils.timezone, but for now(): that answers one moment."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self) -> datetime:
        return self._moment

    def __getattr__(self, name: str) -> object:
        return getattr(timezone, name)


@pytest.fixture
def hold_clock(monkeypatch: pytest.MonkeyPatch) -> Callable[..., datetime]:
    """hold_clock(usage.views, …) returns the time now, and from then on the code of those
    modules (a page's views) reads that moment as the time now. What a page works out from
    the time (a preset's hours, the day in a file's name) is then what the test works out
    from the moment returned, even if an hour or a day turns between the two."""

    def hold(*modules: ModuleType) -> datetime:
        moment = timezone.now()
        for module in modules:
            monkeypatch.setattr(module, "timezone", _HeldTimezone(moment))
        return moment

    return hold


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(email: str | None = None, name: str = "", password: str = PASSWORD) -> User:
        email = email or f"user{next(counter)}@example.com"
        try:
            return user_sign_up(email=email, password=password, name=name, verified=True)
        except IntegrityError as error:
            raise AssertionError(_left_behind(email)) from error

    return make


# The tests that started last, and when: what _left_behind names.
_recent_tests: deque[tuple[datetime, str]] = deque(maxlen=30)


def pytest_runtest_logstart(nodeid: str, location: object) -> None:
    _recent_tests.append((datetime.now(UTC), nodeid))


def _left_behind(email: str) -> str:
    """Why a test's user could not be made: a row of that address was committed by someone
    else. Twice in CI (tests/accounts on PostgreSQL, then every test's `user` refused until
    the next flush) a row outlived its test, and nothing said whose it was. This names the
    row's time beside the tests that started last, the threads still running and, on
    PostgreSQL, the other connections to the test database. It reads over a connection of
    its own: this test's transaction is aborted."""
    lines = [f"A user {email!r} is already in the database, committed outside this test."]
    row: Sequence[object] | None = None
    others: list[Sequence[object]] = []
    if connection.vendor == "postgresql":
        with another_connection() as other:
            row = other.execute(
                "SELECT id, date_joined, last_login FROM accounts_user WHERE email = %s", [email]
            ).fetchone()
            others = other.execute(
                "SELECT pid, application_name, state, backend_start, xact_start, left(query, 200)"
                " FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()"
            ).fetchall()
    else:
        row = (
            User.objects.filter(email=email).values_list("id", "date_joined", "last_login").first()
        )
    lines.append(f"Its row (id, date_joined, last_login): {row}")
    lines += [
        "The tests that started last:",
        *(f"  {at:%H:%M:%S.%f} {n}" for at, n in _recent_tests),
    ]
    lines.append(f"Threads: {[thread.name for thread in threading.enumerate()]}")
    lines += ["Other connections to the test database:", *(f"  {other}" for other in others)]
    return "\n".join(lines)


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    return make_user(email="ada@example.com", name="Ada Lovelace")


@pytest.fixture
def project(user: User) -> Project:
    """The project that sign-up made for `user`."""
    return Project.objects.for_user(user).get()


@pytest.fixture
def make_project() -> Callable[..., Project]:
    def make(owner: User, name: str = "Another project") -> Project:
        return project_create(name=name, owner=owner)

    return make


@pytest.fixture
def signed_in(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def make_key(user: User) -> Callable[..., tuple[ApiKey, str]]:
    """A key and its secret, made by `user`, or in a project of which they are not a
    member by its first owner (only members make keys)."""

    def make(project: Project, name: str = "Production", **options: object) -> tuple[ApiKey, str]:
        if "created_by" not in options:
            members = project.memberships.order_by("created_at", "id")
            member = members.filter(user=user).first() or members.filter(role="owner").first()
            options["created_by"] = member.user if member else None
        return api_key_create(project=project, name=name, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def api_key(make_key: Callable[..., tuple[ApiKey, str]], project: Project) -> tuple[ApiKey, str]:
    return make_key(project)


class Api:
    """The API as a client sees it: JSON in, JSON out, a bearer token on every call."""

    def __init__(self, client: Client, token: str | None) -> None:
        self.client = client
        self.token = token

    def _headers(self, token: str | None, headers: dict[str, str] | None) -> dict[str, str]:
        result = dict(headers or {})
        if token:
            result["Authorization"] = f"Bearer {token}"
        return result

    def get(self, path: str, *, token: str | None = None, headers: dict | None = None, **params):
        return self.client.get(path, params, headers=self._headers(token or self.token, headers))

    def send(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        token: str | None = None,
        headers: dict | None = None,
        secure: bool = False,
    ):
        import json

        return self.client.generic(
            method,
            path,
            json.dumps(body) if body is not None else "",
            content_type="application/json",
            headers=self._headers(token or self.token, headers),
            secure=secure,
        )

    def post(self, path: str, body: object = None, **kwargs):
        return self.send("POST", path, body, **kwargs)


@pytest.fixture
def api(api_key: tuple[ApiKey, str]) -> Api:
    return Api(Client(), api_key[1])


@pytest.fixture
def admin(user: User, project: Project) -> Api:
    """A PAT with the keys permission, naming the project: the caller that manages keys
    over /v1."""
    _, secret = personal_token_create(
        user=user, name="Key rotation", permissions=["agents", "read", "write", "keys"]
    )
    api = Api(Client(), secret)
    api.client.defaults["HTTP_X_PROJECT"] = project.slug
    return api


@pytest.fixture
def htmx(signed_in: Client) -> Client:
    """The signed-in client, asking as htmx does."""
    signed_in.defaults["HTTP_HX_REQUEST"] = "true"
    return signed_in


def usage_call(
    at: datetime,
    *,
    key: ApiKey | None = None,
    client_token: ClientToken | None = None,
    client_token_id: int | None = None,
    pat: PersonalAccessToken | None = None,
    project: Project | None = None,
    status: int = 200,
    error_code: str = "",
    ip: str | None = "203.0.113.7",
    method: str = "POST",
    agent: str = "my-agent",
    path: str | None = None,
    user_agent: str = "reminix-python/1.4",
    latency_us: int = 1500,
    request_id: str | None = None,
) -> UsageEntry:
    """One API call as the API logs it (usage/writer.py): made with `key`, with a client
    token (`client_token`, or `client_token_id` beside the `key` that minted it), with a
    `pat` acting on `project`, or with nothing that identified anyone (unattributed)."""
    project_id = project.pk if project else None
    if client_token is not None:
        key, pat = client_token.api_key, client_token.personal_token
        client_token_id, project_id = client_token.pk, client_token.project_id
    if client_token_id is not None:
        kind = TokenKind.CLIENT_TOKEN.value
    elif key is not None:
        kind = TokenKind.API_KEY.value
    elif pat is not None:
        kind = TokenKind.PERSONAL_ACCESS_TOKEN.value
    else:
        kind = ""
    if key is not None and project_id is None:
        project_id = key.project_id
    if path is None:
        path = f"/v1/agents/{agent}/invoke" if agent else "/v1/projects/current"
    return UsageEntry(
        created_at=at,
        project_id=project_id,
        api_key_id=key.pk if key else None,
        client_token_id=client_token_id,
        personal_token_id=pat.pk if pat else None,
        token_kind=kind,
        method=method,
        path=path,
        agent=agent,
        status=status,
        error_code=error_code,
        latency_us=latency_us,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id or f"req_{next(_request_ids):024x}",
    )


def keys_at_their_widest(
    project: Project,
    user: User,
    *,
    rolled: ApiKey | None = None,
    expiring: str = "Nightly export job for the billing warehouse",
    expires_in: timedelta = timedelta(days=2, hours=23, minutes=30),
) -> None:
    """The key list's rows at their widest: a key rolled whose old secret still works
    (`rolled`, or a new "Billing"), one suspended with a reason, and one in its last days
    (`expiring`, ending in `expires_in`)."""
    if rolled is None:
        rolled, _ = api_key_create(project=project, name="Billing", created_by=user)
    api_key_roll(api_key=rolled, by=user, overlap=timedelta(hours=24))
    suspended, _ = api_key_create(project=project, name="Partner sync", created_by=user)
    api_key_suspend(
        api_key=suspended,
        by=user,
        reason="Seen calling from an unknown network; checking with the partner",
    )
    api_key_create(
        project=project,
        name=expiring,
        created_by=user,
        expires_at=timezone.now() + expires_in,
    )


# -- A call log read as a person reads it: page after page, and its CSV ---------------------


def log_next_link(response: Any) -> str | None:
    """The address of a call log page's "older" link (rel="next"), or None on the last."""
    match = re.search(
        r'<a [^>]*href="([^"]+)" hx-get="[^"]+" rel="next"', response.content.decode()
    )
    return match.group(1).replace("&amp;", "&") if match else None


def log_walk(client: Client, url: str, params: dict[str, str] | None = None) -> list[str]:
    """The request ids a call log shows from its first page to its last, following its
    links; each link must keep every filter in `params`."""
    seen: list[str] = []
    response = client.get(url, params or {})
    while True:
        assert response.status_code == 200, response.content.decode()[:2000]
        seen += [row.request_id for row in response.context["page"].rows]
        older = log_next_link(response)
        if older is None:
            return seen
        for name, value in (params or {}).items():
            assert parse_qs(urlsplit(older).query)[name] == [value]
        response = client.get(older)


def log_export_link(response: Any) -> str:
    """The address of a call log page's Download CSV link."""
    match = re.search(r'href="([^"]*export\.csv[^"]*)"', response.content.decode())
    assert match is not None
    return match.group(1).replace("&amp;", "&")


def exported_request_ids(client: Client, url: str) -> list[str]:
    """The request ids of a call log export's rows, in the file's order."""
    response = client.get(url)
    assert response.status_code == 200
    body = b"".join(response.streaming_content).decode()
    return [row["request_id"] for row in csv.DictReader(io.StringIO(body.lstrip("\ufeff")))]


@pytest.fixture
def redis_store(settings):
    """Run the API with a shared store: a Redis of its own (database 15, a fresh key prefix
    per test), and no copies of callers left over from another test."""
    import secrets

    from api.callers import copies
    from core.shared_store import shared_store

    settings.REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.REDIS_KEY_PREFIX = f"test:{secrets.token_hex(4)}:"
    copies.clear()
    store = shared_store()
    assert store is not None
    store.health.unavailable_until = 0.0  # a failure another test caused is not ours
    try:
        store.round_trip(("PING",))
    except Exception as unavailable:  # noqa: BLE001
        message = f"Redis is not running on 127.0.0.1:6379 ({unavailable})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    yield store
    copies.clear()
    store.health.unavailable_until = 0.0
    with contextlib.suppress(Exception):  # the one key without a lifetime (api/callers.py)
        store.round_trip(("DEL", f"{settings.REDIS_KEY_PREFIX}epoch"))


@pytest.fixture(scope="session")
def prepared_deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prepared]:
    """The migrated database and collected static files that each deployment of
    tests/servers.py copies: made once a session, by the first test that asks."""
    postgresql = os.environ.get("DATABASE_URL", "").startswith("postgres")
    with prepared(tmp_path_factory.mktemp("prepared"), postgresql=postgresql) as made:
        yield made


# -- Timeouts: a unit of work that runs out of time while the database answers everyone else


@pytest.fixture
def short_lock_timeout() -> Iterator[None]:
    """This connection gives up waiting for a lock after 100 ms, not the settings' 10 s: the
    same error (SQLSTATE 55P03), sooner. PostgreSQL only."""
    if connection.vendor != "postgresql":
        pytest.skip("lock_timeout is PostgreSQL's: SQLite has no row locks to wait for")
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '100ms'")
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET lock_timeout")


@contextlib.contextmanager
def another_connection() -> Iterator[object]:
    """A second connection to the test database, its transaction rolled back at the end:
    another process holding a lock while a job runs. PostgreSQL only."""
    import psycopg

    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"] or None,
        port=db["PORT"] or None,
        user=db["USER"] or None,
        password=db["PASSWORD"] or None,
        dbname=db["NAME"],
    ) as other:
        try:
            yield other
        finally:
            other.rollback()


@contextlib.contextmanager
def row_locked_elsewhere(row: models.Model) -> Iterator[None]:
    """Another transaction holds `row`'s lock (SELECT ... FOR UPDATE) until the block ends,
    as a long one elsewhere would. The row must be committed: a transactional test."""
    table = connection.ops.quote_name(row._meta.db_table)
    with another_connection() as other:
        other.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", [row.pk])  # noqa: S608
        yield


def committed_elsewhere(sql: str, params: Sequence[object]) -> None:
    """`sql` in a transaction of another connection, committed, giving up on a row lock
    after 100 ms: an owner's change from the dashboard while a job runs. PostgreSQL only."""
    with another_connection() as other:
        other.execute("SET lock_timeout = '100ms'")
        other.execute(sql, params)
        other.commit()


@contextlib.contextmanager
def statements_run() -> Iterator[list[str]]:
    """The SQL of every statement this connection runs meanwhile, as sent. (Django's
    CaptureQueriesContext reads a log that stops growing at 9,000 entries: past that, in
    a long test, it sees nothing.)"""
    seen: list[str] = []

    def record(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


@contextlib.contextmanager
def statements_time_out(matches: Callable[[str, Sequence[object]], bool]) -> Iterator[None]:
    """Each statement of this connection for which `matches(sql, params)` holds runs into
    PostgreSQL's statement timeout instead (SQLSTATE 57014, raised as Django raises it), as
    one too slow for the timeout would."""
    if connection.vendor != "postgresql":
        pytest.skip("statement_timeout is PostgreSQL's")

    def wrapper(execute, sql, params, many, context):
        if not matches(sql, params or ()):
            return execute(sql, params, many, context)
        if connection.in_atomic_block:  # the transaction's rollback undoes SET LOCAL
            execute("SET LOCAL statement_timeout = '10ms'", None, False, context)
            return execute("SELECT pg_sleep(1)", None, False, context)
        execute("SET statement_timeout = '10ms'", None, False, context)
        try:
            return execute("SELECT pg_sleep(1)", None, False, context)
        finally:
            execute("RESET statement_timeout", None, False, context)

    with connection.execute_wrapper(wrapper):
        yield


# -- Two requests at once (PostgreSQL: SQLite serialises every writer)


def started(send) -> threading.Thread:
    """`send` running in a thread of its own, with its own database connection."""

    def run() -> None:
        try:
            send()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


# How long a test waits for a thread of its own to end, or for another connection to reach
# a lock: far longer than any of them takes on a loaded CI machine, and still an end (a
# thread that never ends fails its test instead of holding up the whole run).
THREAD_SECONDS = 60


def finished(*threads: threading.Thread) -> None:
    """Wait for `threads` to end, each for at most THREAD_SECONDS; fail if one did not."""
    for thread in threads:
        thread.join(timeout=THREAD_SECONDS)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"still running after {THREAD_SECONDS} s: {', '.join(stuck)}"


def run_together(*sends) -> None:
    """Each send in a thread of its own, with its own database connection."""
    finished(*(started(send) for send in sends))


def backend_pid() -> int:
    """The PostgreSQL backend of this thread's database connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def waits_for(pid: int, *threads: threading.Thread) -> bool:
    """True once another backend waits for a lock that backend `pid` holds; False if the
    `threads` all end first (nothing of theirs ever waited for it). What a test of a lock
    asks before it lets `pid`'s transaction go on: the other side is at the lock now, not
    merely on its way. PostgreSQL only."""
    deadline = time.monotonic() + THREAD_SECONDS
    with another_connection() as probe:
        while time.monotonic() < deadline and any(t.is_alive() for t in threads):
            row = probe.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted"
                " AND %s = ANY(pg_blocking_pids(pid)))",
                [pid],
            ).fetchone()
            if row and row[0]:
                return True
            probe.rollback()
            time.sleep(0.01)
    return False


def commit_once_it_waits(other, send) -> bool:
    """`send` (a request) in a thread of its own while `other` (another_connection()) holds
    a change it has not committed; `other` commits once the send waits for one of its
    locks: a change that commits while a request is on its way. True if the send waited
    for it; False if it ended without waiting, and `other` committed after it."""
    thread = started(send)
    try:
        waited = waits_for(other.info.backend_pid, thread)
    finally:
        other.commit()
    finished(thread)
    return waited


def paused_in_another_thread(monkeypatch, module, name, send):
    """`send` in a thread of its own, paused when it calls `module.name` (after its first
    locks) until the returned `go` is set; its backend's pid once it is there."""
    reached, go, seen = threading.Event(), threading.Event(), {}
    real = getattr(module, name)

    def paused(*args, **kwargs):
        seen["pid"] = backend_pid()
        reached.set()
        go.wait(timeout=THREAD_SECONDS)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, paused)
    thread, failures = started_recording(send)
    assert reached.wait(timeout=THREAD_SECONDS)
    return thread, go, seen["pid"], failures


def the_second_waits_for_the_first(monkeypatch, module, name, first, second) -> list[BaseException]:
    """`first` in a thread of its own, paused when it calls `module.name` (once it holds
    its locks); `second`, started meanwhile, must wait for those locks; then both finish
    and `first` raised nothing. Returns what `second` raised."""
    paused, go, pid, failures = paused_in_another_thread(monkeypatch, module, name, first)
    following, following_failures = started_recording(second)
    try:
        assert waits_for(pid, following)
    finally:
        go.set()
        finished(paused, following)
    assert failures == []
    return following_failures


def started_recording(send) -> tuple[threading.Thread, list[BaseException]]:
    """`send` in a thread of its own (started()), and the list of what it raised, for the
    test to assert empty: an exception in a thread would otherwise only be a warning."""
    failures: list[BaseException] = []

    def run() -> None:
        try:
            send()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            failures.append(error)

    return started(run), failures


def held_back_until_both_are_ready(monkeypatch, *services) -> None:
    """Two requests at once are both past their checks before either writes: a call of any
    of the (module, name) services waits until a second one is made."""
    together = threading.Barrier(2)
    for module, name in services:
        real = getattr(module, name)

        def wait_then(real=real, **kwargs):
            together.wait(timeout=10)
            return real(**kwargs)

        monkeypatch.setattr(module, name, wait_then)


class HeldMailServer(BaseEmailBackend):
    """A mail server that takes mail only once the test lets it through (on the request's
    thread at once: a request that waited for it would hang the test), and says how many
    connections were opened and on which thread each mail was sent."""

    let_through = threading.Event()
    connections = 0
    sent: list[tuple[str, bool]] = []  # (to, on the request's thread)

    def open(self) -> bool:
        type(self).connections += 1
        return True

    def send_messages(self, email_messages):  # type: ignore[no-untyped-def]
        on_main = threading.current_thread() is threading.main_thread()
        if not on_main and not HeldMailServer.let_through.wait(10):
            raise TimeoutError("the test never let the mail through")
        HeldMailServer.sent += [(message.to[0], on_main) for message in email_messages]
        return len(email_messages)


@pytest.fixture
def held_mail_server() -> Iterator[type[HeldMailServer]]:
    """Work after the answer on its thread (core.after_answer), mail to HeldMailServer;
    call `.let_through.set()` and `drain()` to have it sent. Tests using it mark
    `django_db(transaction=True)`: a commit's callbacks then run inside the request."""
    HeldMailServer.let_through.clear()
    HeldMailServer.connections, HeldMailServer.sent = 0, []
    backend = f"{__name__}.HeldMailServer"
    with override_settings(WORK_AFTER_ANSWER=True, EMAIL_BACKEND=backend):
        try:
            yield HeldMailServer
        finally:
            HeldMailServer.let_through.set()
            assert drain(timeout=10)
