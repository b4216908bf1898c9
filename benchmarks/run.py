"""`make bench`: what authentication and usage logging cost, and how the usage page scales.

1. Drops and creates a PostgreSQL database of its own (reminix_bench), so each run starts
   from nothing; creates a user, a project (with its echo agent `my-agent`) and keys with
   the project's management commands.
2. Starts `make serve` on it (gunicorn, production settings, the benchmark floor mounted)
   and drives load from a second process on loopback (wrk when installed, otherwise
   benchmarks/load.py) at
     (1) POST /v1/agents/my-agent/invoke with an API key: authentication and usage log;
     (2) POST /bench/floor/<project>/agents/my-agent/invoke: the same echo agent, no
         authentication, no usage log (the floor).
   Same connections and duration for both, after a warm-up, in alternating rounds so a
   neighbour's load on the machine falls on both. Prints requests/s, p50 and p99 latency,
   non-2xx answers, the server's CPU per request (gunicorn workers and their PostgreSQL
   backends, which a busy neighbour does not skew), and the ratio (1)/(2); checks that
   every authenticated call reached the usage log.
3. Seeds 1,000,000 usage rows for one key (benchmarks/seed.py) and times the key's usage
   page from a signed-in client: the first page and a filtered first page.
4. Restarts the server with USAGE_FLUSH_SECONDS=0 (a transaction per call instead of a
   batch) and measures the ratio again, so the batching choice is backed by figures.

The server is stopped at the end, on failure and on Ctrl-C. Options: --help.
"""

from __future__ import annotations

import argparse
import contextlib
import html.parser
import http.client
import io
import os
import platform
import resource
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from load import LoadResult, drive, load_tool  # noqa: E402
from seed import seed_usage  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/reminix_bench"
OWNER_EMAIL = "bench@example.com"
AIM_RATIO = 0.6
AIM_PAGE_MS = 100.0
SERVER_START_TIMEOUT = 120.0
SERVER_STOP_TIMEOUT = 45.0

AUTH = "(1) API key + usage log"
FLOOR = "(2) floor: no auth, no log"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help=f"a database of its own, dropped and created (default {DEFAULT_DATABASE_URL})",
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--connections",
        type=int,
        default=8,
        help="concurrent connections (8: with 2 sync workers more only add queueing)",
    )
    parser.add_argument("--warmup", type=float, default=3, help="seconds per scenario (3)")
    parser.add_argument("--duration", type=float, default=6, help="seconds per timed run (6)")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per scenario (3)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows to seed (10^6)")
    parser.add_argument("--page-runs", type=int, default=20, help="timed GETs per page (20)")
    parser.add_argument(
        "--sync-rounds", type=int, default=2, help="rounds with the synchronous log (2)"
    )
    parser.add_argument("--no-sync", action="store_true", help="skip USAGE_FLUSH_SECONDS=0")
    parser.add_argument("--python-load", action="store_true", help="ignore wrk if installed")
    parser.add_argument(
        "--redis",
        nargs="?",
        const="redis://127.0.0.1:6379/13",
        default="",
        metavar="URL",
        help="serve with REDIS_URL (rate-limit counts in Redis); default URL %(const)s",
    )
    # `make bench` passes no arguments; BENCH_ARGS="--no-sync --rounds 5" make bench does.
    args = parser.parse_args(shlex.split(os.environ.get("BENCH_ARGS", "")) + sys.argv[1:])
    args.duration = min(max(args.duration, 1), 120)
    args.warmup = min(max(args.warmup, 0), 60)
    args.rounds = min(max(args.rounds, 1), 10)
    args.sync_rounds = min(max(args.sync_rounds, 1), 10)
    args.rows = min(max(args.rows, 1), 20_000_000)
    args.page_runs = min(max(args.page_runs, 3), 200)
    return args


def say(text: str = "") -> None:
    print(text, flush=True)


# The database and the server.


def database_urls(url: str) -> tuple[str, str, str]:
    """(url of the bench database, url of the maintenance database, bench database name)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"The benchmark drops its database; give it one of its own, not {name!r}.")
    return url, urlunsplit(parts._replace(path="/postgres")), name


def recreate_database(url: str) -> None:
    import psycopg

    _, maintenance, name = database_urls(url)
    with psycopg.connect(maintenance, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_environment(database_url: str, workers: int, redis_url: str) -> dict[str, str]:
    """Production settings for the server and for this process's own Django."""
    return {
        "DJANGO_SETTINGS_MODULE": "reminix_dashboard.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOKEN_HASH_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "SECURE_SSL_REDIRECT": "false",  # plain http on loopback
        "BENCHMARK_FLOOR_ENDPOINT": "true",
        "WEB_CONCURRENCY": str(workers),
        "USAGE_FLUSH_SECONDS": "0.5",
        # Connections live through the whole run (the default 60 s would reconnect once a
        # minute), so the CPU of each worker's PostgreSQL backend can be read per run.
        "CONN_MAX_AGE": "600",
        # Another gunicorn on this machine would share the default control socket path.
        "GUNICORN_CMD_ARGS": "--no-control-socket",
        # The limiter still counts every call (its cost is part of the path measured) but
        # never refuses one: the load is one key far above the default 1200 a minute.
        "API_RATE_LIMIT_PER_MINUTE": str(10**9),
        # The local-memory cache unless --redis: what `make serve` runs with by default.
        "REDIS_URL": redis_url,
        # The detection phase raises alerts on the seeded log; their emails go nowhere.
        "EMAIL_URL": "dummymail://",
    }


def cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_group(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # a zombie has finished
            members.append(int(entry.name))
    return members


class Server:
    """`make serve` in a process group of its own, its output in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.port = int(env["PORT"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        make = shutil.which("make") or "make"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [make, "--no-print-directory", "-s", "serve"],
                cwd=ROOT,
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"make serve exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if request(self.port, "GET", "/account/login/", timeout=2).status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"make serve did not answer in {SERVER_START_TIMEOUT:.0f} s")

    def pids(self) -> list[int]:
        return process_group(self.process.pid) if self.process else []

    def stop(self) -> None:
        """SIGTERM to the group (gunicorn stops gracefully, workers flush), then SIGKILL."""
        if self.process is None:
            return
        process, self.process = self.process, None
        pgid = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + SERVER_STOP_TIMEOUT
        while process_group(pgid) and time.monotonic() < deadline:
            process.poll()  # reap make as soon as it exits
            time.sleep(0.2)
        if process_group(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Response:
    status: int
    body: bytes
    seconds: float


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        data = answer.read()
        return Response(answer.status, data, time.perf_counter() - started)
    finally:
        connection.close()


# Django in this process: setup, counting, seeding, a session for the usage page.


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    import django

    django.setup()


def manage(*args: str) -> str:
    from django.core.management import call_command

    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue().strip()


@dataclass
class Fixture:
    slug: str
    load_key: str
    load_key_id: int
    usage_key_id: int
    user_id: int
    project_id: int


def create_fixture() -> Fixture:
    from django.core.management import call_command

    from accounts.models import Project, User
    from apikeys.models import ApiKey

    call_command("migrate", verbosity=0, interactive=False)
    os.environ["DJANGO_SUPERUSER_PASSWORD"] = secrets.token_urlsafe(16)
    manage("createsuperuser", "--noinput", "--email", OWNER_EMAIL)
    slug = manage("createproject", "--owner", OWNER_EMAIL, "Bench")
    load_key = manage("createapikey", "--project", slug, "--name", "load")
    # The seeded key may not deploy agents: its log has 403s for PUTs, as a real one would.
    manage("createapikey", "--project", slug, "--name", "seeded", "--permissions", "agents,read")
    project = Project.objects.get(slug=slug)
    keys = {k.name: k.pk for k in ApiKey.objects.filter(project=project)}
    user = User.objects.get(email=OWNER_EMAIL)
    return Fixture(slug, load_key, keys["load"], keys["seeded"], user.pk, project.pk)


def usage_counts(key_id: int) -> tuple[int, int]:
    """(log rows, the hourly roll-up's request total) for one key."""
    from django.db.models import Sum

    from apikeys.models import UsageHour, UsageRecord

    rows = UsageRecord.objects.filter(api_key_id=key_id).count()
    rolled = UsageHour.objects.filter(api_key_id=key_id).aggregate(n=Sum("requests"))["n"] or 0
    return rows, rolled


def backend_cpu() -> dict[int, float]:
    """CPU seconds of every PostgreSQL backend on the bench database but ours."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        pids = [row[0] for row in cursor.fetchall()]
    return {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}


def server_cpu(server: Server) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of the server's processes, and of its PostgreSQL backends."""
    own = {pid: cpu for pid in server.pids() if (cpu := cpu_seconds(pid)) is not None}
    return own, backend_cpu()


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots (a process that started in between counts whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def signed_in_cookie(user_id: int) -> str:
    """A session for the user, made the way django.contrib.auth.login makes one."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from accounts.models import User

    user = User.objects.get(pk=user_id)
    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def seed(fixture: Fixture, rows: int) -> dict[str, Any]:
    from django.db import connection, transaction

    from apikeys.models import ApiKey, UsageHour, UsageIp, UsageRecord

    tables = {
        "record": UsageRecord._meta.db_table,
        "hour": UsageHour._meta.db_table,
        "ip": UsageIp._meta.db_table,
        "key": ApiKey._meta.db_table,
    }
    # The seeded month gets its daily partitions first (PostgreSQL), as a month of real
    # traffic would have, instead of piling into the default partition.
    from datetime import timedelta as days

    from django.utils import timezone

    from apikeys.retention import usage_partitions_ensure

    today = timezone.now().date()
    usage_partitions_ensure(start_day=today - days(days=32), end_day=today + days(days=1))

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        fields = [
            (f.column, f.null, None if f.primary_key else f.get_default())
            for f in UsageRecord._meta.concrete_fields
            if not f.primary_key
        ]
        figures = seed_usage(
            cursor,
            fields=fields,
            tables=tables,
            project_id=fixture.project_id,
            api_key_id=fixture.usage_key_id,
            rows=rows,
        )
    written = time.perf_counter() - started
    # A table that has lived a month has been vacuumed and analysed by autovacuum; one
    # written a second ago has not, and would mislead the planner and the timing.
    with connection.cursor() as cursor:
        for table in (tables["record"], tables["hour"], tables["ip"]):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    figures["write_seconds"] = written
    figures["vacuum_seconds"] = time.perf_counter() - started - written
    return figures


# Load.


@dataclass
class Scenario:
    name: str
    path: str
    authorization: str = ""


@dataclass
class Run:
    result: LoadResult
    python_cpu: float  # gunicorn: make, the arbiter, the workers and their flush threads
    database_cpu: float  # the workers' PostgreSQL backends
    others: float  # share of the machine that neither the server nor the load tool used

    def cpu_ms(self) -> tuple[float, float]:
        n = max(self.result.requests, 1)
        return 1000 * self.python_cpu / n, 1000 * self.database_cpu / n


@dataclass
class Tally:
    runs: list[Run] = field(default_factory=list)
    warmup_requests: int = 0
    warmup_seconds: float = 0.0

    @property
    def requests(self) -> int:
        return sum(r.result.requests for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r.result.seconds for r in self.runs)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> tuple[float, float]:
        """Server CPU per request: (Python, PostgreSQL)."""
        n = max(self.requests, 1)
        return (
            1000 * sum(r.python_cpu for r in self.runs) / n,
            1000 * sum(r.database_cpu for r in self.runs) / n,
        )

    @property
    def cpu_ms_per_request(self) -> float:
        return sum(self.cpu_ms)

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r.result, attribute) for r in self.runs)

    @property
    def others(self) -> float:
        return statistics.median(r.others for r in self.runs)

    @property
    def non2xx(self) -> int:
        return sum(r.result.non2xx for r in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(r.result.socket_errors for r in self.runs)


def row(
    label: str, rps: float, p50: float, p99: float, non2xx: int, sock: int, cpu: tuple, others: str
) -> str:
    python, database = cpu
    return (
        f"  {label:<30} {rps:>7.1f} {p50:>7.1f} {p99:>7.1f} {non2xx:>7} {sock:>5} "
        f"{python + database:>6.2f} = {python:.2f} + {database:.2f}  {others:>6}"
    )


HEADER = (
    f"  {'scenario':<30} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'sock':>5} "
    "server CPU ms/req = Python + PgSQL  others"
)


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot; steal counts as busy."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def wait_for_quiet(limit: float = 0.3, patience: float = 45.0) -> str:
    """Wait, at most `patience` seconds, until the machine's other work uses under `limit`
    of the cores (the server is idle meanwhile); say what was found."""
    started = time.monotonic()
    while True:
        busy_before, total_before = machine_jiffies()
        time.sleep(1)
        busy_after, total_after = machine_jiffies()
        share = (busy_after - busy_before) / max(total_after - total_before, 1)
        waited = time.monotonic() - started
        if share < limit:
            return f"the machine is {100 * share:.0f}% busy before the load (waited {waited:.0f} s)"
        if waited >= patience:
            return (
                f"the machine is still {100 * share:.0f}% busy with other work after "
                f"{waited:.0f} s; going ahead (see the others column)"
            )


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(
    server: Server, scenarios: list[Scenario], args: argparse.Namespace, rounds: int, tool: str
) -> dict[str, Tally]:
    tallies = {s.name: Tally() for s in scenarios}
    say("  " + wait_for_quiet())

    def one(scenario: Scenario, seconds: float) -> Run:
        own_before, database_before = server_cpu(server)
        busy_before, total_before = machine_jiffies()
        tool_before = children_cpu()
        result = drive(
            scenario.name,
            server.base + scenario.path,
            authorization=scenario.authorization,
            connections=args.connections,
            duration=seconds,
            tool=tool,
        )
        tool_cpu = children_cpu() - tool_before
        busy_after, total_after = machine_jiffies()
        own_after, database_after = server_cpu(server)
        python, database = (
            cpu_used(own_before, own_after),
            cpu_used(database_before, database_after),
        )
        tick = os.sysconf("SC_CLK_TCK")
        busy = (busy_after - busy_before) / tick
        others = (busy - python - database - tool_cpu) / max((total_after - total_before) / tick, 1)
        return Run(result, python, database, max(others, 0.0))

    if args.warmup:
        for scenario in scenarios:
            warm = one(scenario, args.warmup).result
            tallies[scenario.name].warmup_requests += warm.requests
            tallies[scenario.name].warmup_seconds += warm.seconds
    say(HEADER)
    for number in range(rounds):
        # ABBA order, so a drift in the machine's background load falls on both sides.
        for scenario in scenarios if number % 2 == 0 else scenarios[::-1]:
            run = one(scenario, args.duration)
            tallies[scenario.name].runs.append(run)
            r = run.result
            label = f"{scenario.name} #{number + 1}"
            others = f"{100 * run.others:.0f}%"
            say(
                row(
                    label,
                    r.rps,
                    r.p50_ms,
                    r.p99_ms,
                    r.non2xx,
                    r.socket_errors,
                    run.cpu_ms(),
                    others,
                )
            )
    return tallies


def summarise(tallies: dict[str, Tally]) -> tuple[float, float]:
    """Print the per-scenario totals; return (ratio by req/s, ratio by server CPU/request)."""
    say("  " + "-" * (len(HEADER) - 2))
    for name, t in tallies.items():
        p50, p99 = t.median("p50_ms"), t.median("p99_ms")
        say(row(name, t.rps, p50, p99, t.non2xx, t.socket_errors, t.cpu_ms, ""))
    for name, t in tallies.items():
        if t.non2xx or t.socket_errors:
            say(
                f"  WARNING: {name} had {t.non2xx} non-2xx answers and {t.socket_errors} socket "
                "errors; its figures are not the path it names (see the server log)"
            )
    auth, floor = tallies[AUTH], tallies[FLOOR]
    rps_ratio = auth.rps / floor.rps if floor.rps else 0.0
    cpu_ratio = floor.cpu_ms_per_request / auth.cpu_ms_per_request if auth.requests else 0.0
    pairs = [a.result.rps / f.result.rps for a, f in zip(auth.runs, floor.runs, strict=False)]
    say(
        "  (totals: req/s = all requests / all seconds; p50, p99 = median of the runs; "
        "CPU from /proc, so a neighbour's load does not count; others = share of the "
        "cores used by neither the server nor the load tool during the run)"
    )
    verdict = "met" if rps_ratio >= AIM_RATIO else "NOT met"
    say(
        f"  ratio (1)/(2) by req/s: {rps_ratio:.2f}  (per round {min(pairs):.2f} to "
        f"{max(pairs):.2f}; aim >= {AIM_RATIO:.2f}: {verdict})"
    )
    say(
        f"  ratio (1)/(2) by server CPU per request: {cpu_ratio:.2f}  "
        "(the req/s ratio if the server's CPU were the only limit)"
    )
    return rps_ratio, cpu_ratio


def busy_warning(tallies: dict[str, Tally], limit: float = 0.25) -> list[str]:
    others = max(t.others for t in tallies.values())
    if others < limit:
        return []
    return [
        f"the machine was busy with other work during the load (median {100 * others:.0f}% of "
        "the cores): the req/s figures are low and noisy; the CPU ratio holds better"
    ]


def check_logged(key_id: int, tally: Tally, flush_seconds: float) -> tuple[int, float]:
    """Wait for the batch to land; compare log rows with the calls wrk saw answered."""
    time.sleep(flush_seconds * 2 + 1)
    rows, rolled = usage_counts(key_id)
    answered = tally.requests + tally.warmup_requests
    seconds = tally.seconds + tally.warmup_seconds
    extra = rows - answered
    note = (
        f"(+{extra} answered after the load tool stopped counting)"
        if extra >= 0
        else f"({-extra} MISSING)"
    )
    say(
        f"  usage log: {rows} rows for {answered} answered authenticated calls {note}; "
        f"hourly roll-up total {rolled}{' (matches)' if rolled == rows else ' (DIFFERS)'}; "
        f"{rows / seconds:.0f} rows logged per second under load"
    )
    return rows, rows / seconds


# The usage page.


class FilterFinder(html.parser.HTMLParser):
    """Query strings the page itself offers: filter links and <select> options in forms."""

    def __init__(self, page_path: str) -> None:
        super().__init__()
        self.page_path = page_path
        self.candidates: list[str] = []
        self._select: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and (href := a.get("href") or a.get("hx-get") or ""):
            parts = urlsplit(href)
            if parts.query and parts.path in ("", self.page_path):
                self.candidates.append(parts.query)
        elif tag == "select":
            self._select = a.get("name")
        elif tag == "option" and self._select and (value := a.get("value")):
            self.candidates.append(f"{self._select}={value}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None


def pick_filter(candidates: list[str]) -> str | None:
    """Prefer a filter by outcome or status; skip plain pagination."""
    useful = [c for c in candidates if not c.startswith(("page=", "cursor=", "before="))]
    for word in ("outcome", "status", "error"):
        for candidate in useful:
            if word in candidate:
                return candidate
    return useful[0] if useful else None


def time_page(port: int, path: str, cookie: str, runs: int) -> tuple[list[float], Response]:
    headers = {"Cookie": cookie, "Host": "127.0.0.1"}
    first = request(port, "GET", path, headers=headers)
    if first.status != 200:
        raise RuntimeError(f"GET {path} answered {first.status}, not 200")
    request(port, "GET", path, headers=headers)  # both workers have now rendered it once
    timings = []
    for _ in range(runs):
        answer = request(port, "GET", path, headers=headers)
        if answer.status != 200:
            raise RuntimeError(f"GET {path} answered {answer.status}, not 200")
        timings.append(answer.seconds * 1000)
    return timings, first


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * len(ordered)) - 1)]


# The run.


@contextlib.contextmanager
def stopped_on_exit(servers: list[Server]) -> Iterator[None]:
    def terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        for server in servers:
            server.stop()
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    args = parse_args()
    database_url = args.database_url or DEFAULT_DATABASE_URL
    _, _, database = database_urls(database_url)
    tool = load_tool(force_python=args.python_load)
    workdir = Path(tempfile.mkdtemp(prefix="reminix-bench-"))
    say("== make bench ==")
    say(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
        f"Python {platform.python_version()}; load tool: "
        + ("wrk (1 thread)" if tool == "wrk" else "benchmarks/load.py (asyncio)")
    )
    say(
        f"server: make serve, gunicorn sync x {args.workers} workers, PostgreSQL database "
        f"{database}; {args.connections} connections; warm-up {args.warmup:g} s, then "
        f"{args.rounds} x {args.duration:g} s per scenario, alternating"
    )
    say(
        "rate limiter on, limit 10^9 a minute (counted, never refusing); cache: "
        + (f"Redis {args.redis}" if args.redis else "local memory (no REDIS_URL)")
    )
    say(f"server output: {workdir}/server-*.log")

    try:
        recreate_database(database_url)
    except Exception as error:
        say(f"Cannot reach PostgreSQL at {database_url}: {error}")
        return 1

    env = server_environment(database_url, args.workers, args.redis)
    django_setup(env)
    fixture = create_fixture()
    scenarios = [
        Scenario(AUTH, "/v1/agents/my-agent/invoke", f"Bearer {fixture.load_key}"),
        Scenario(FLOOR, f"/bench/floor/{fixture.slug}/agents/my-agent/invoke"),
    ]
    batched = Server({**env, "PORT": str(free_port())}, workdir / "server-batched.log")
    synchronous = Server(
        {**env, "PORT": str(free_port()), "USAGE_FLUSH_SECONDS": "0"},
        workdir / "server-sync.log",
    )
    report: list[str] = []

    with stopped_on_exit([batched, synchronous]):
        # 1. Load, with the usage log batched (the default).
        say("\n-- load: usage log batched (USAGE_FLUSH_SECONDS=0.5, the default) --")
        batched.start()
        smoke_test(batched, scenarios)
        tallies = measure(batched, scenarios, args, args.rounds, tool)
        rps_ratio, cpu_ratio = summarise(tallies)
        rows, rows_per_second = check_logged(fixture.load_key_id, tallies[AUTH], 0.5)
        auth, floor = tallies[AUTH], tallies[FLOOR]
        report += [
            f"(1) authenticated + usage log: {auth.rps:.0f} req/s, "
            f"p50 {auth.median('p50_ms'):.1f} ms, p99 {auth.median('p99_ms'):.1f} ms, "
            f"{auth.cpu_ms_per_request:.2f} ms server CPU/req",
            f"(2) floor (no auth, no log):   {floor.rps:.0f} req/s, "
            f"p50 {floor.median('p50_ms'):.1f} ms, p99 {floor.median('p99_ms'):.1f} ms, "
            f"{floor.cpu_ms_per_request:.2f} ms server CPU/req",
            f"ratio (1)/(2): {rps_ratio:.2f} by req/s, {cpu_ratio:.2f} by server CPU per request "
            f"(aim >= {AIM_RATIO:.2f})",
            f"usage rows logged: {rows} ({rows_per_second:.0f}/s under load, all calls logged: "
            f"{'yes' if rows >= auth.requests + auth.warmup_requests else 'NO'})",
        ]
        if auth.non2xx or floor.non2xx or auth.socket_errors or floor.socket_errors:
            report.append("NOT VALID: non-2xx answers or socket errors under load (see above)")
        report += busy_warning(tallies)

        # 2. The usage page at a million rows.
        say(f"\n-- usage page: seeding {args.rows:,} rows for one key --")
        seeded = seed(fixture, args.rows)
        say(
            f"  wrote {seeded['rows']:,} rows, {seeded['hours']} hourly and "
            f"{seeded['addresses']} address roll-ups in {seeded['write_seconds']:.1f} s; "
            f"VACUUM ANALYZE {seeded['vacuum_seconds']:.1f} s"
        )
        report += time_usage_page(batched, fixture, args.page_runs, seeded["rows"])
        report.append(stop_after_burst(batched, scenarios[0], fixture.load_key_id))
        report.append(time_detection(logged_per_second=rows_per_second))

        # 3. The same load with a transaction per call.
        if not args.no_sync:
            say("\n-- load: usage log synchronous (USAGE_FLUSH_SECONDS=0: a commit per call) --")
            synchronous.start()
            smoke_test(synchronous, scenarios)
            before_rows, _ = usage_counts(fixture.load_key_id)
            sync_tallies = measure(synchronous, scenarios, args, args.sync_rounds, tool)
            sync_rps_ratio, sync_cpu_ratio = summarise(sync_tallies)
            time.sleep(1)
            after_rows, _ = usage_counts(fixture.load_key_id)
            sync_auth = sync_tallies[AUTH]
            say(f"  usage log: {after_rows - before_rows} rows written during this server's run")
            report.append(
                f"with USAGE_FLUSH_SECONDS=0: (1) {sync_auth.rps:.0f} req/s, "
                f"{sync_auth.cpu_ms_per_request:.2f} ms server CPU/req; ratio (1)/(2) "
                f"{sync_rps_ratio:.2f} by req/s, {sync_cpu_ratio:.2f} by server CPU"
            )
            report += busy_warning(sync_tallies)
            synchronous.stop()

    say("\n== figures ==")
    for line in report:
        say(line)
    say(
        f"(load tool {tool}; {args.connections} connections; {args.workers} gunicorn workers; "
        f"load average now {os.getloadavg()[0]:.2f})"
    )
    return 0


def time_detection(*, logged_per_second: float) -> str:
    """The suspicious-activity detector over the whole log (the load's calls and the
    seeded million), from its start, as `manage.py detect_suspicious_activity` runs it."""
    from datetime import timedelta

    from django.utils import timezone

    from apikeys.detection import detect
    from apikeys.models import DetectionCursor

    say("\n-- detection: detect_suspicious_activity over the whole log --")
    DetectionCursor.objects.all().delete()
    started = time.perf_counter()
    result = detect(now=timezone.now() + timedelta(minutes=1), settle=timedelta(0))
    seconds = time.perf_counter() - started
    rate = result.rows / seconds if seconds else 0.0
    line = (
        f"detection: {result.rows:,} log rows in {seconds:.1f} s = {rate:,.0f} rows/s, "
        f"{rate / logged_per_second:,.0f}x the {logged_per_second:,.0f} rows/s logged under load "
        f"({result.flags_raised} alerts raised)"
    )
    say("  " + line)
    return line


def smoke_test(server: Server, scenarios: list[Scenario]) -> None:
    """Each scenario answers 200 with the echo; an unauthenticated /v1 call is refused."""
    for scenario in scenarios:
        headers = {"Content-Type": "application/json"}
        if scenario.authorization:
            headers["Authorization"] = scenario.authorization
        answer = request(
            server.port, "POST", scenario.path, body=b'{"prompt":"hello"}', headers=headers
        )
        if answer.status != 200 or b'"hello"' not in answer.body:
            raise RuntimeError(
                f"{scenario.name}: POST {scenario.path} answered {answer.status}: "
                f"{answer.body[:300]!r}\n{server.log_tail()}"
            )
    refused = request(
        server.port,
        "POST",
        scenarios[0].path,
        body=b'{"prompt":"hello"}',
        headers={"Content-Type": "application/json"},
    )
    if refused.status != 401:
        raise RuntimeError(f"/v1 without a key answered {refused.status}, not 401")


def stop_after_burst(server: Server, scenario: Scenario, key_id: int, calls: int = 50) -> str:
    """Stop the server right after a burst: gunicorn's worker_exit hook must flush it."""
    before, _ = usage_counts(key_id)
    headers = {"Content-Type": "application/json", "Authorization": scenario.authorization}
    for _ in range(calls):
        request(server.port, "POST", scenario.path, body=b'{"prompt":"hello"}', headers=headers)
    server.stop()
    after, _ = usage_counts(key_id)
    line = f"orderly shutdown right after {calls} calls: {after - before} of {calls} logged" + (
        "" if after - before == calls else " (LOST SOME)"
    )
    say("  " + line)
    return line


# Filters timed on the seeded key: 4.3 % and 0.3 % of its calls, so the second one has to
# look much further back for a page of rows.
PAGE_FILTERS = ("outcome=client_error", "outcome=server_error")


def time_usage_page(server: Server, fixture: Fixture, runs: int, rows: int) -> list[str]:
    path = f"/projects/{fixture.slug}/settings/api-keys/{fixture.usage_key_id}/usage/"
    cookie = signed_in_cookie(fixture.user_id)
    try:
        timings, first = time_page(server.port, path, cookie, runs)
    except RuntimeError as error:
        # The page is someone else's work in progress; the load figures still stand.
        line = f"usage page, {rows:,} rows: NOT MEASURED, {error} (see {server.log_path})"
        say("  " + line)
        return [line]
    say(f"  GET {path}  ({len(first.body):,} bytes, first request {first.seconds * 1000:.0f} ms)")
    finder = FilterFinder(path)
    finder.feed(first.body.decode("utf-8", errors="replace"))
    queries = [q for q in PAGE_FILTERS if q in finder.candidates]
    if not queries:
        queries = [pick_filter(finder.candidates) or PAGE_FILTERS[0]]
        if not finder.candidates:
            say("  (the page offers no filter; the filtered figure may be the same page)")
    pages: list[tuple[str, str, list[float]]] = [("first page", path, timings)]
    for query in queries:
        label, url = f"filtered ?{query}", f"{path}?{query}"
        try:
            pages.append((label, url, time_page(server.port, url, cookie, runs)[0]))
        except RuntimeError as error:
            say(f"  {label}: NOT MEASURED, {error}")
    lines = []
    for label, url, values in pages:
        median = statistics.median(values)
        verdict = "met" if median < AIM_PAGE_MS else "NOT met"
        sql = page_queries(url, cookie)
        lines.append(
            f"usage page, {rows:,} rows, {label}: median {median:.1f} ms, p95 {p95(values):.1f} ms "
            f"(aim < {AIM_PAGE_MS:.0f} ms: {verdict}); {sql}"
        )
        say("  " + lines[-1])
    say(
        f"  ({runs} timed GETs each over HTTP from a signed-in client after two untimed ones; "
        "SQL figures from one in-process request)"
    )
    return lines


def page_queries(url: str, cookie: str) -> str:
    """One in-process request of the page: its time, its queries and their time."""
    from django.db import connection
    from django.test import Client

    client = Client(HTTP_HOST="127.0.0.1")
    name, _, value = cookie.partition("=")
    client.cookies[name] = value
    client.get(url)  # templates compiled, connection open
    times: list[float] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            times.append((time.perf_counter() - started) * 1000)

    with connection.execute_wrapper(timed):
        started = time.perf_counter()
        client.get(url)
        total = (time.perf_counter() - started) * 1000
    slowest = ", ".join(f"{t:.1f}" for t in sorted(times, reverse=True)[:3])
    return (
        f"in-process {total:.0f} ms, of which {len(times)} queries {sum(times):.1f} ms "
        f"(slowest {slowest})"
    )


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; server stopped", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as error:
        print(f"\nmake bench failed: {error}", file=sys.stderr)
        sys.exit(1)
