"""`make bench`: what the dashboard's API path costs, against bare Django and against DRF.

Three servers on this machine and this PostgreSQL, each under gunicorn with the same sync
worker count, answering the same POST /v1/agents/my-agent/invoke {"prompt": …} with the
same JSON ({"output", "execution": {"id", "status", "durationMs"}}):

  (a) ours   `make serve`: the API key checked, the call counted by the rate limiter (set
             far above what the load reaches, so it never refuses), an execution recorded
             and the call written to the usage log (batched every USAGE_FLUSH_SECONDS);
  (b) floor  bare Django (benchmarks/floor/): no middleware, no apps, no database; one
             function view parsing the JSON and echoing it. Nothing can be faster on this
             Django and Python, so ours/floor says how much of the cost is ours;
  (c) peer   Django REST framework + djangorestframework-api-key (benchmarks/peer/), the
             key sent as `Authorization: Bearer`, checked by HasAPIKey against its own
             database (reminix_bench_peer); from its own venv (.venv-bench), never the app's.

For each worker count (--workers, 2 and 4 by default) the three run at once on different
ports; a load tool on loopback (wrk, or benchmarks/load.py without it) loads one at a time,
after a warm-up, in alternating rounds (A B C, C B A, …) so a neighbour's load falls on all
three. Printed per server: req/s, p50 and p99 latency, non-2xx answers, and server CPU per
call (gunicorn's processes plus their PostgreSQL backends, from /proc); then the ratios
ours/floor and ours/peer beside the targets. Ours is checked to have refused no call (no
429) and to have logged every call it answered.

Then, on ours alone: the usage page of a key with 10^6 seeded log rows, an orderly stop
right after a burst (every call logged), and the detector's throughput over the whole log.
Last, ours with USAGE_FLUSH_SECONDS=0 (a commit per call) in the same alternating rounds as
ours batched and the floor, so the batching choice is backed by figures. (The two ours
servers share a database; the backends of the one at rest use no CPU, so each run's CPU
is still its own server's.)

Every server is stopped at the end, on failure and on Ctrl-C. Options: --help.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import app_access
from lag_probe import LagProbe
from load import load_tool
from rounds import LoadOptions, Tally, Target, alternate, say
from servers import BENCH_DIR, ROOT, Server, gunicorn, ours, request
from usage_page import time_usage_page
from usage_scale import run_scale

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/reminix_bench"
APP_PYTHON = ROOT / ".venv" / "bin" / "python"  # the Makefile's $(BIN)/python, ours' Python
DEFAULT_PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
INVOKE_PATH = "/v1/agents/my-agent/invoke"
FLUSH_SECONDS = 0.5  # the dashboard's default USAGE_FLUSH_SECONDS

# Targets, printed beside the figures and never asserted (issue #9).
TARGET_WORKERS = 2  # the req/s targets are for this worker count
TARGET_VS_FLOOR = 0.6  # ours >= 0.6 x floor by req/s
TARGET_VS_PEER = 2.0  # ours >= 2 x peer by req/s
TARGET_P99_VS_FLOOR = 3.0  # ours' p99 <= 3 x floor's
TARGET_EXECUTION_LAG = 1.0  # every answered call in the execution log within 1 s

OURS = "(a) ours: key + limit + usage log"
FLOOR = "(b) floor: bare Django, no DB"
PEER = "(c) peer: DRF + drf-api-key"
SYNC = "(a) ours, USAGE_FLUSH_SECONDS=0"

# The environment this process was started with, before Django's settings are added to
# it: the floor and the peer start from this, not from the dashboard's configuration.
BASE_ENV = dict(os.environ)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", ""),
        help=f"a database of its own, dropped and created (default {DEFAULT_DATABASE_URL}); "
        "the peer's is the same name + _peer",
    )
    parser.add_argument(
        "--workers", default="2,4", help="gunicorn sync workers, one phase each (2,4)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--connections", type=int, default=16, help="connections (16)")
    parser.add_argument("--warmup", type=float, default=3, help="seconds per server (3)")
    parser.add_argument("--duration", type=float, default=5, help="seconds per timed run (5)")
    parser.add_argument("--rounds", type=int, default=4, help="timed runs per server (4)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows to seed (10^6)")
    parser.add_argument("--page-runs", type=int, default=20, help="timed GETs per page (20)")
    parser.add_argument(
        "--scale-rows",
        type=int,
        default=10_000_000,
        help="usage rows the scale stage seeds across projects and keys (10^7)",
    )
    parser.add_argument("--scale-runs", type=int, default=5, help="timed GETs per scale page (5)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale stage")
    parser.add_argument(
        "--scale-only", action="store_true", help="only the scale stage: no servers, no load"
    )
    parser.add_argument(
        "--sync-rounds", type=int, default=2, help="rounds with USAGE_FLUSH_SECONDS=0 (2)"
    )
    parser.add_argument("--no-sync", action="store_true", help="skip USAGE_FLUSH_SECONDS=0")
    parser.add_argument("--python-load", action="store_true", help="ignore wrk if installed")
    parser.add_argument(
        "--peer-python",
        type=Path,
        default=DEFAULT_PEER_PYTHON,
        help="the peer's Python, with benchmarks/requirements-peer.lock installed "
        "(.venv-bench/bin/python, which `make bench` makes)",
    )
    parser.add_argument(
        "--redis",
        default="redis://127.0.0.1:6379/13",
        metavar="URL",
        help="ours' REDIS_URL: rate limits, change markers and the usage stream "
        "(default %(default)s; its CPU counts as ours)",
    )
    parser.add_argument(
        "--no-redis",
        dest="redis",
        action="store_const",
        const="",
        help="serve ours without a shared store, as `make run`'s one process would",
    )
    # `make bench BENCH_ARGS="--workers 2 --rows 100000"` (make exports it) adds options.
    args = parser.parse_args(shlex.split(os.environ.get("BENCH_ARGS", "")) + sys.argv[1:])
    try:
        args.workers = [min(max(int(w), 1), 32) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        parser.error("--workers takes worker counts separated by commas, e.g. 2,4")
    if not args.workers:
        parser.error("--workers needs at least one worker count")
    # Absolute, not resolved: a venv's python is a symlink out of the venv.
    args.peer_python = args.peer_python.absolute()
    args.threads = min(max(args.threads, 1), 16)
    args.connections = min(max(args.connections, 1), 1000)
    args.duration = min(max(args.duration, 1), 120)
    args.warmup = min(max(args.warmup, 0), 60)
    args.rounds = min(max(args.rounds, 1), 10)
    args.sync_rounds = min(max(args.sync_rounds, 1), 10)
    args.rows = min(max(args.rows, 1), 20_000_000)
    args.page_runs = min(max(args.page_runs, 3), 200)
    args.scale_rows = min(max(args.scale_rows, 1000), 50_000_000)
    args.scale_runs = min(max(args.scale_runs, 5), 100)
    if args.scale_only and args.no_scale:
        parser.error("--scale-only and --no-scale leave nothing to run")
    return args


# Databases and the servers' environments.


def database_name(url: str) -> str:
    name = urlsplit(url).path.lstrip("/")
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit(f"The benchmark drops its database; give it one of its own, not {name!r}.")
    return name


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def recreate_database(url: str) -> None:
    """Drop and create the database of `url`, from the server's maintenance database."""
    import psycopg

    name = database_name(url)
    with psycopg.connect(with_database(url, "postgres"), autocommit=True, connect_timeout=5) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')


def ours_environment(database_url: str, redis_url: str) -> dict[str, str]:
    """Production settings for ours, and for this process's own Django (app_access).
    Without `redis_url` (--no-redis) REDIS_URL is left out: set but empty, the settings
    refuse it at start."""
    env = {
        "DJANGO_SETTINGS_MODULE": "reminix_dashboard.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "TOKEN_HASH_KEY": secrets.token_urlsafe(32),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": database_url,
        "SECURE_SSL_REDIRECT": "false",  # plain http on loopback
        "USAGE_FLUSH_SECONDS": str(FLUSH_SECONDS),
        # Connections live through the whole run (the default 60 s would reconnect once a
        # minute), so the CPU of each worker's PostgreSQL backend can be read per run.
        "CONN_MAX_AGE": "600",
        # Another gunicorn on this machine would share the default control socket path.
        "GUNICORN_CMD_ARGS": "--no-control-socket",
        # The limiter counts every call (its cost is part of the path measured) but never
        # refuses one: the load is one key far above the default 1200 a minute.
        "API_RATE_LIMIT_PER_MINUTE": str(10**9),
        # The detection phase raises alerts on the seeded log; their emails go nowhere.
        "EMAIL_URL": "dummymail://",
        # make serve's scheduler would run detection every minute during the load rounds;
        # the bench times detection in a phase of its own.
        "SCHEDULER": "off",
    }
    if redis_url:  # else the local-memory cache: what `make serve` runs with by default
        env["REDIS_URL"] = redis_url
    return env


def floor_environment() -> dict[str, str]:
    return {**BASE_ENV, "SECRET_KEY": secrets.token_urlsafe(50)}


def peer_environment(peer_url: str) -> dict[str, str]:
    return {
        **BASE_ENV,
        "SECRET_KEY": secrets.token_urlsafe(50),
        "BENCH_PEER_DATABASE_URL": peer_url,
        "CONN_MAX_AGE": "600",
    }


def prepare_peer(python: Path, peer_url: str) -> str:
    """A fresh peer database, migrated, with one key from APIKey.objects.create_key."""
    recreate_database(peer_url)
    finished = subprocess.run(
        [str(python), "-m", "peer.prepare"],
        cwd=BENCH_DIR,
        env=peer_environment(peer_url),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    key = finished.stdout.strip()
    if finished.returncode != 0 or not key:
        raise RuntimeError(f"peer.prepare failed:\n{finished.stdout}\n{finished.stderr}")
    return key


def peer_versions(python: Path) -> str:
    """The peer's package versions, printed so a run says what it compared with."""
    code = (
        "import importlib.metadata as m; print(', '.join(f'{p} {m.version(p)}' for p in "
        "('django', 'djangorestframework', 'djangorestframework-api-key', 'gunicorn')))"
    )
    finished = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    return finished.stdout.strip() or "(versions unknown)"


# Starting, checking and stopping the servers.


class Fleet:
    """The servers started so far, so that every one is stopped on the way out."""

    def __init__(self) -> None:
        self.servers: list[Server] = []

    def start(self, *servers: Server) -> None:
        for server in servers:
            self.servers.append(server)
            server.start(INVOKE_PATH)

    def stop(self, *servers: Server) -> None:
        for server in servers or tuple(self.servers):
            server.stop()

    @contextlib.contextmanager
    def stopped_on_exit(self) -> Iterator[None]:
        def terminate(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, terminate)
        try:
            yield
        finally:
            self.stop()
            signal.signal(signal.SIGTERM, previous)


def invoke(target: Target, *, authorization: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    key = target.authorization if authorization is None else authorization
    if key:
        headers["Authorization"] = key
    answer = request(
        target.server.port, "POST", target.path, body=b'{"prompt":"hello"}', headers=headers
    )
    return answer.status, answer.body


def answer_shape(body: bytes) -> object:
    """The keys of an answer, nested, so the three can be compared without their values."""

    def shape(value: object) -> object:
        return {k: shape(v) for k, v in sorted(value.items())} if isinstance(value, dict) else None

    return shape(json.loads(body))


def smoke_test(targets: list[Target]) -> None:
    """Each target echoes with 200 in the same JSON shape; a keyed one refuses no key."""
    shapes = {}
    for target in targets:
        status, body = invoke(target)
        if status != 200 or b'"hello"' not in body:
            raise RuntimeError(
                f"{target.label}: POST {target.path} answered {status}: {body[:300]!r}\n"
                f"{target.server.log_tail()}"
            )
        shapes[target.label] = answer_shape(body)
        if target.authorization and invoke(target, authorization="")[0] not in (401, 403):
            raise RuntimeError(f"{target.label} answered a call without a key")
    if len({json.dumps(s, sort_keys=True) for s in shapes.values()}) != 1:
        raise RuntimeError(f"the servers answer in different shapes: {shapes}")


# The load phases.


@dataclass(frozen=True)
class Phase:
    """One worker count: the three servers' tallies and what the usage log showed."""

    workers: int
    tallies: dict[str, Tally]
    log_line: str
    logged_per_second: float
    lag_line: str  # how long ours' answers took to reach the execution log, under load


def _settled_counts(key_id: int, patience: float = 60.0) -> tuple[int, int]:
    """The key's usage counts once the log stops growing: the ingest (or a worker's batch)
    may still be writing what was answered."""
    time.sleep(FLUSH_SECONDS * 2 + 1)
    counts = app_access.usage_counts(key_id)
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        time.sleep(2)
        now = app_access.usage_counts(key_id)
        if now == counts:
            break
        counts = now
    return counts


def usage_log_check(key_id: int, rows_before: int, tally: Tally, extra_calls: int) -> str:
    """Wait for the batch to land; compare the key's new log rows with the answered calls.

    The load tool does not count the calls still in flight when its time is up, though the
    server answers and logs them, so the log may hold a few more rows, never fewer."""
    rows, rolled = _settled_counts(key_id)
    logged = rows - rows_before
    answered = tally.answered + extra_calls
    difference = logged - answered
    note = (
        f"+{difference} answered after the load tool stopped counting"
        if difference >= 0
        else f"{-difference} MISSING"
    )
    return (
        f"{tally.limited} calls refused by the rate limit (429); usage log: {logged} rows for "
        f"{answered} answered calls ({note}); hourly roll-up "
        f"{'matches' if rolled == rows else f'DIFFERS ({rolled} for {rows} rows)'}"
    )


def floor_server(context: Context, workers: int, name: str) -> Server:
    """The floor, on the .venv's Python and Django, as ours."""
    return gunicorn(
        "floor",
        APP_PYTHON,
        "floor.wsgi:application",
        env=floor_environment(),
        workers=workers,
        log_path=context.log(name),
        database=None,
    )


def load_phase(fleet: Fleet, workers: int, args: argparse.Namespace, context: Context) -> Phase:
    """The three servers at `workers` each, in alternating rounds."""
    say(f"\n-- load at {workers} gunicorn sync workers per server --")
    servers = (
        ours(context.env, workers, context.log(f"ours-{workers}w"), context.database),
        floor_server(context, workers, f"floor-{workers}w"),
        gunicorn(
            "peer",
            args.peer_python,
            "peer.wsgi:application",
            env=peer_environment(context.peer_url),
            workers=workers,
            log_path=context.log(f"peer-{workers}w"),
            database=database_name(context.peer_url),
        ),
    )
    fleet.start(*servers)
    table, column = app_access.execution_table()
    probe = LagProbe(
        port=servers[0].port,
        path=INVOKE_PATH,
        authorization=f"Bearer {context.fixture.probe_key}",
        database_url=context.env["DATABASE_URL"],
        table=table,
        column=column,
    )
    targets = [
        Target(OURS, servers[0], INVOKE_PATH, f"Bearer {context.fixture.load_key}", probe),
        Target(FLOOR, servers[1], INVOKE_PATH),
        Target(PEER, servers[2], INVOKE_PATH, f"Bearer {context.peer_key}"),
    ]
    rows_before, _ = app_access.usage_counts(context.fixture.load_key_id)
    smoke_test(targets)  # one call with our key, logged like the load's
    tallies = alternate(targets, args.rounds, context.load)
    log_line = usage_log_check(context.fixture.load_key_id, rows_before, tallies[OURS], 1)
    say(f"  ours: {log_line}")
    lag_line = probe.summary(TARGET_EXECUTION_LAG)
    say(f"  ours: {lag_line}")
    fleet.stop(*servers)
    ours_tally = tallies[OURS]
    logged_per_second = ours_tally.answered / max(ours_tally.seconds_with_warmup, 1e-9)
    return Phase(workers, tallies, log_line, logged_per_second, lag_line)


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def comparisons(phase: Phase) -> list[str]:
    """ours/floor and ours/peer by req/s, CPU per call and p99, beside the targets."""
    ours_t, floor_t, peer_t = (phase.tallies[k] for k in (OURS, FLOOR, PEER))
    at_target = phase.workers == TARGET_WORKERS

    def by_rps(other: Tally, target: float) -> str:
        value = ratio(ours_t.rps, other.rps)
        rounds = [
            ratio(a.result.rps, b.result.rps) for a, b in zip(ours_t.runs, other.runs, strict=True)
        ]
        spread = f"per round {min(rounds):.2f} to {max(rounds):.2f}"
        aim = f"; target >= {target:g}: {verdict(value >= target)}" if at_target else ""
        return f"req/s {value:.2f} ({spread}{aim})"

    def by_cpu(other: Tally) -> str:
        return f"CPU/call {ratio(ours_t.cpu_ms_per_call, other.cpu_ms_per_call):.2f}"

    p99 = ratio(ours_t.median("p99_ms"), floor_t.median("p99_ms"))
    return [
        f"ours/floor: {by_rps(floor_t, TARGET_VS_FLOOR)}; {by_cpu(floor_t)}; p99 {p99:.2f} "
        f"(target <= {TARGET_P99_VS_FLOOR:g}: {verdict(p99 <= TARGET_P99_VS_FLOOR)})",
        f"ours/peer:  {by_rps(peer_t, TARGET_VS_PEER)}; {by_cpu(peer_t)}",
    ]


def cpu_parts(phase: Phase) -> list[str]:
    """Where each server's CPU per call went: which processes spent it."""
    lines = ["CPU ms per call by process (gunicorn: arbiter and workers; Redis counts as ours):"]
    for label in (OURS, FLOOR, PEER):
        parts = phase.tallies[label].parts_ms
        shown = ", ".join(
            f"{part} {ms:.2f}" for part, ms in sorted(parts.items(), key=lambda p: -p[1]) if ms
        )
        lines.append(f"  {label}: {shown or '-'}")
    return lines


def busy_warning(tallies: dict[str, Tally], limit: float = 0.25) -> list[str]:
    others = max(t.others for t in tallies.values())
    if others < limit:
        return []
    return [
        f"the machine was busy with other work during the load (median {100 * others:.0f}% of "
        "the cores): req/s figures are low and noisy; CPU per call holds better, though it "
        "too rises when the cores are shared"
    ]


def validity_warning(tallies: dict[str, Tally]) -> list[str]:
    bad = [label for label, t in tallies.items() if t.non2xx or t.socket_errors]
    if not bad:
        return []
    return [f"NOT VALID: non-2xx answers or socket errors under load for {', '.join(bad)}"]


# Ours alone: the usage page, an orderly stop, detection, the synchronous log.


def stop_after_burst(server: Server, target: Target, key_id: int, calls: int = 50) -> str:
    """Stop the server right after a burst: nothing answered may be lost. Gunicorn's
    worker_exit hook hands what a worker holds to the database or Redis; what is on the
    stream then is written by the next ingest (run here once, as the next start would)."""
    before, _ = app_access.usage_counts(key_id)
    for _ in range(calls):
        invoke(target)
    server.stop()
    if server.env.get("REDIS_URL"):
        app_access.ingest_pending()
    after, _ = app_access.usage_counts(key_id)
    line = f"orderly shutdown right after {calls} calls: {after - before} of {calls} logged" + (
        "" if after - before == calls else " (LOST SOME)"
    )
    say("  " + line)
    return line


def time_detection(logged_per_second: float, workers: int) -> str:
    """The detector over the whole log (the load's calls and the seeded rows): how many
    times faster it reads the log than the API writes it under load."""
    say("\n-- detection: detect_suspicious_activity over the whole log --")
    started = time.perf_counter()
    rows, alerts = app_access.detect_everything()
    seconds = time.perf_counter() - started
    rate = rows / seconds if seconds else 0.0
    line = (
        f"detection: {rows:,} log rows in {seconds:.1f} s = {rate:,.0f} rows/s, "
        f"{ratio(rate, logged_per_second):,.0f}x the {logged_per_second:,.0f} rows/s logged "
        f"under load at {workers} workers ({alerts} alerts raised)"
    )
    say("  " + line)
    return line


def page_and_stop(fleet: Fleet, args: argparse.Namespace, context: Context) -> list[str]:
    """Seed the log, time the usage page on a fresh ours, then stop it after a burst."""
    say(f"\n-- usage page: seeding {args.rows:,} rows for one key --")
    seeded = app_access.seed(context.fixture, args.rows)
    say(
        f"  wrote {seeded['rows']:,} rows, {seeded['hours']} hourly and "
        f"{seeded['addresses']} address roll-ups in {seeded['write_seconds']:.1f} s; "
        f"VACUUM ANALYZE {seeded['vacuum_seconds']:.1f} s"
    )
    workers = args.workers[0]
    server = ours(context.env, workers, context.log(f"ours-page-{workers}w"), context.database)
    fleet.start(server)
    lines = time_usage_page(server, context.fixture, args.page_runs, seeded["rows"])
    target = Target(OURS, server, INVOKE_PATH, f"Bearer {context.fixture.load_key}")
    lines.append(stop_after_burst(server, target, context.fixture.load_key_id))
    return lines


def synchronous_log(fleet: Fleet, args: argparse.Namespace, context: Context) -> list[str]:
    """Ours with USAGE_FLUSH_SECONDS=0 (a commit per call) in the same rounds as ours
    batched and the floor, so the batching choice is judged under the same conditions."""
    workers = args.workers[0]
    say(f"\n-- load: USAGE_FLUSH_SECONDS=0 (a commit per call) vs batched, {workers} workers --")
    key = f"Bearer {context.fixture.load_key}"
    sync_env = {**context.env, "USAGE_FLUSH_SECONDS": "0"}
    servers = (
        ours(context.env, workers, context.log(f"ours-batched-{workers}w"), context.database),
        ours(sync_env, workers, context.log(f"ours-sync-{workers}w"), context.database),
        floor_server(context, workers, f"floor-sync-{workers}w"),
    )
    fleet.start(*servers)
    targets = [
        Target(OURS, servers[0], INVOKE_PATH, key),
        Target(SYNC, servers[1], INVOKE_PATH, key),
        Target(FLOOR, servers[2], INVOKE_PATH),
    ]
    rows_before, _ = app_access.usage_counts(context.fixture.load_key_id)
    smoke_test(targets)  # one call with our key on each of the two
    tallies = alternate(targets, args.sync_rounds, context.load)
    both = Tally(
        runs=tallies[OURS].runs + tallies[SYNC].runs,
        warmups=tallies[OURS].warmups + tallies[SYNC].warmups,
    )
    log_line = usage_log_check(context.fixture.load_key_id, rows_before, both, 2)
    say(f"  ours, both servers: {log_line}")
    fleet.stop(*servers)
    batched, sync, floor = tallies[OURS], tallies[SYNC], tallies[FLOOR]
    return [
        f"USAGE_FLUSH_SECONDS=0 vs batched (0.5 s), same rounds, {workers} workers: "
        f"{sync.rps:.0f} vs {batched.rps:.0f} req/s ({ratio(sync.rps, batched.rps):.2f}x), "
        f"{sync.cpu_ms_per_call:.2f} vs {batched.cpu_ms_per_call:.2f} ms CPU/call "
        f"({ratio(sync.cpu_ms_per_call, batched.cpu_ms_per_call):.2f}x), p99 "
        f"{sync.median('p99_ms'):.1f} vs {batched.median('p99_ms'):.1f} ms; ours/floor by "
        f"req/s {ratio(sync.rps, floor.rps):.2f} synchronous, {ratio(batched.rps, floor.rps):.2f} "
        "batched",
        f"  ours, both servers: {log_line}",
        *busy_warning(tallies),
        *validity_warning(tallies),
    ]


# The run.


@dataclass(frozen=True)
class Context:
    """What every phase needs: where things are, the keys, the load's options."""

    workdir: Path
    env: dict[str, str]  # ours' environment (without PORT and WEB_CONCURRENCY)
    database: str
    peer_url: str
    fixture: app_access.Fixture
    peer_key: str
    load: LoadOptions

    def log(self, name: str) -> Path:
        return self.workdir / f"server-{name}.log"


def prepare(args: argparse.Namespace, tool: str) -> Context:
    """Fresh databases for ours and the peer, their keys, Django in this process."""
    database_url = args.database_url or DEFAULT_DATABASE_URL
    database = database_name(database_url)
    peer_url = with_database(database_url, f"{database}_peer")
    if not args.peer_python.exists():
        raise RuntimeError(
            f"The peer's Python {args.peer_python} is missing: `make bench` makes .venv-bench "
            "from benchmarks/requirements-peer.lock (or pass --peer-python)."
        )
    try:
        recreate_database(database_url)
    except Exception as error:
        raise RuntimeError(f"Cannot reach PostgreSQL at {database_url}: {error}") from error
    env = ours_environment(database_url, args.redis)
    app_access.django_setup(env)
    fixture = app_access.create_fixture()
    peer_key = prepare_peer(args.peer_python, peer_url)
    load = LoadOptions(tool, args.threads, args.connections, args.duration, args.warmup)
    workdir = Path(tempfile.mkdtemp(prefix="reminix-bench-"))
    return Context(workdir, env, database, peer_url, fixture, peer_key, load)


def describe(args: argparse.Namespace, context: Context) -> None:
    tool = context.load.tool
    say(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start; "
        f"Python {platform.python_version()}; load tool: "
        + (
            f"wrk -t{args.threads} -c{args.connections}"
            if tool == "wrk"
            else f"benchmarks/load.py (asyncio, {args.connections} connections)"
        )
    )
    say(
        f"servers: gunicorn sync x {', '.join(map(str, args.workers))} workers; ours: make serve "
        f"on {context.database}; floor: benchmarks/floor; peer: benchmarks/peer on "
        f"{database_name(context.peer_url)} ({peer_versions(args.peer_python)})"
    )
    say(load_description(args, tool))
    say(
        "ours' rate limit: 10^9 calls a minute (counted, never refusing); its cache: "
        + (f"Redis {args.redis}" if args.redis else "local memory (no REDIS_URL)")
    )
    say(f"server output: {context.workdir}/server-*.log")


def load_description(args: argparse.Namespace, tool: str) -> str:
    generator = (
        f"wrk -t{args.threads} -c{args.connections}"
        if tool == "wrk"
        else (f"benchmarks/load.py -c{args.connections}")
    )
    return (
        f"load: {generator}, POST {INVOKE_PATH}; per server and worker count a "
        f"{args.warmup:g} s warm-up, then {args.rounds} x {args.duration:g} s, alternating"
    )


def table(phases: list[Phase], description: str) -> list[str]:
    """The load figures of every phase, with the ratios and targets under each."""
    lines = [
        description,
        f"{'':<36} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'sock':>5} "
        "CPU ms/call = Python + PgSQL",
    ]
    for phase in phases:
        lines.append(f"{phase.workers} gunicorn sync workers each")
        for label in (OURS, FLOOR, PEER):
            t = phase.tallies[label]
            python, database = t.cpu_ms
            lines.append(
                f"  {label:<34} {t.rps:>7.1f} {t.median('p50_ms'):>7.1f} "
                f"{t.median('p99_ms'):>7.1f} {t.non2xx:>7} {t.socket_errors:>5} "
                f"{t.cpu_ms_per_call:>5.2f} = {python:.2f} + {database:.2f}"
            )
        lines += ["  " + line for line in comparisons(phase)]
        lines += ["  " + line for line in cpu_parts(phase)]
        lines.append(f"  ours: {phase.log_line}")
        lines.append(f"  ours: {phase.lag_line}")
        lines += ["  " + line for line in busy_warning(phase.tallies)]
        lines += ["  " + line for line in validity_warning(phase.tallies)]
    return lines


def scale_only(args: argparse.Namespace) -> int:
    """The scale stage alone, on a fresh database: `run.py --scale-only`."""
    database_url = args.database_url or DEFAULT_DATABASE_URL
    say("== make bench: the scale stage only ==")
    recreate_database(database_url)
    app_access.django_setup(ours_environment(database_url, args.redis))
    report = run_scale(app_access.create_fixture(), args.scale_rows, args.scale_runs)
    say("\n== figures ==")
    for line in report:
        say(line)
    return 0


def main() -> int:
    args = parse_args()
    if args.scale_only:
        return scale_only(args)
    tool = load_tool(force_python=args.python_load)
    say("== make bench ==")
    context = prepare(args, tool)
    describe(args, context)
    fleet = Fleet()
    report: list[str] = []
    with fleet.stopped_on_exit():
        phases = [load_phase(fleet, w, args, context) for w in args.workers]
        report += table(phases, load_description(args, tool))
        report += page_and_stop(fleet, args, context)
        report.append(time_detection(phases[0].logged_per_second, phases[0].workers))
        if not args.no_sync:
            report += synchronous_log(fleet, args, context)
    if not args.no_scale:
        # Last: its 10^7 rows would weigh on the detection and load phases above.
        report += run_scale(context.fixture, args.scale_rows, args.scale_runs)
    say("\n== figures ==")
    for line in report:
        say(line)
    say(
        "(req/s: all calls / all seconds of the timed runs; p50, p99: median of the runs; "
        "CPU from /proc: each server's process group (for ours: gunicorn, the ingest and "
        "Redis) as Python, and its PostgreSQL backends, which a "
        "neighbour's load moves far less than req/s; CPU/call ratio ours/other: the inverse "
        "of the req/s ratio if the server's CPU were the only limit)"
    )
    say(
        f"(targets at {TARGET_WORKERS} workers: ours >= {TARGET_VS_FLOOR:g}x floor and >= "
        f"{TARGET_VS_PEER:g}x peer by req/s; at every count, ours' p99 <= "
        f"{TARGET_P99_VS_FLOOR:g}x floor's; load tool {tool}; "
        f"load average now {os.getloadavg()[0]:.2f})"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped", file=sys.stderr)
        sys.exit(130)
    except RuntimeError as error:
        print(f"\nmake bench failed: {error}", file=sys.stderr)
        sys.exit(1)
