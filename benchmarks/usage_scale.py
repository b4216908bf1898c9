"""`make bench`'s scale stage: the usage pages at 10^7 log rows (issue 14, point 7).

Seeds a month of several projects' calls straight into PostgreSQL, a day at a time, by
INSERT … SELECT over generate_series into a plain table then attached as that day's
partition (so 10^7 rows take minutes, not hours: see `load_day`): about 50 keys with
skewed traffic, client tokens and personal access tokens, about 1 % of each failed
outcome, thousands of addresses (a few used only once or twice), unique request ids.
The roll-ups the writer keeps (UsageHour per key and hour, UsageIp per key and address,
and the project overview's per hour and per day and address) are then built by GROUP BY
over the seeded rows, so they hold what the writer would have written. Then, from an
in-process signed-in client, times the project's front page, its usage overview, the
per-key log and the project call log with each single filter (median of --scale-runs
after a warm-up), and counts the partitions the detector's read of one minute's new
rows plans to touch.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import app_access
from rounds import say
from seed import HOURS_SQL, project_rollups_sql

KEYS = 48
PROJECTS = 3
CLIENT_TOKENS = 6  # minted by the three busiest keys
PATS = 2
DAYS = 30
OVERVIEW_30D_MS, OVERVIEW_24H_MS, LOG_MS = 300.0, 100.0, 100.0

# `k` picks the key (power(random, 3): the first keys take most calls), `c` the token kind,
# `r` the outcome, `a` the address, `g` the row's number across days.
SEED_SQL = """
INSERT INTO {partition} (id, created_at, project_id, api_key_id, client_token_id,
    personal_token_id, token_kind, method, agent, path, status, error_code, outcome,
    latency_us, ip, user_agent, request_id)
SELECT
    nextval(%(ids)s::regclass), at,
    CASE kind WHEN 'client_token' THEN (%(ct_projects)s::bigint[])[ci]
              WHEN 'personal_access_token' THEN (%(projects)s::bigint[])[1 + g %% %(n_projects)s]
              ELSE (%(key_projects)s::bigint[])[ki] END,
    CASE kind WHEN 'client_token' THEN (%(ct_keys)s::bigint[])[ci]
              WHEN 'personal_access_token' THEN NULL ELSE (%(keys)s::bigint[])[ki] END,
    CASE WHEN kind = 'client_token' THEN (%(cts)s::bigint[])[ci] END,
    CASE WHEN kind = 'personal_access_token' THEN (%(pats)s::bigint[])[1 + g %% %(n_pats)s] END,
    kind, 'POST', CASE WHEN r < .99 THEN 'my-agent' ELSE 'support-bot' END,
    '/v1/agents/my-agent/invoke',
    CASE WHEN r < .96 THEN 200 WHEN r < .97 THEN 400 WHEN r < .98 THEN 403
         WHEN r < .99 THEN 401 ELSE 500 END,
    CASE WHEN r < .96 THEN '' WHEN r < .97 THEN 'invalid_field_value'
         WHEN r < .98 THEN 'insufficient_permissions' WHEN r < .99 THEN 'expired_api_key'
         ELSE 'internal_error' END,
    CASE WHEN r < .96 THEN 'ok' WHEN r < .97 THEN 'client_error' WHEN r < .98 THEN 'auth_failure'
         WHEN r < .99 THEN 'revoked_key' ELSE 'server_error' END,
    1500 + (power(random(), 4) * 400000)::int,
    CASE WHEN a < .6 THEN '10.20.' || ki || '.' || (1 + (a * 1000)::int %% 4)
         WHEN a < .99999 THEN '100.64.' || ((a * 1e6)::int %% 16) || '.' || ((a * 1e7)::int %% 250)
         ELSE '198.51.100.' || (1 + g %% 200) END::inet,
    'reminix-python/1.4.2',
    'req_' || lpad(to_hex(g), 24, '0')
FROM (
    SELECT g, at, r, a, c, ki, 1 + (g %% %(n_cts)s) AS ci,
        CASE WHEN c < .08 THEN 'client_token' WHEN c < .11 THEN 'personal_access_token'
             ELSE 'api_key' END AS kind
    FROM (
        SELECT g, %(start)s::timestamptz + (g::float8 / %(rows)s) * %(span)s::interval AS at,
            random() AS r, random() AS a, random() AS c,
            1 + floor(power(random(), 3) * %(n_keys)s)::int AS ki
        FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS g
    ) AS drawn
    -- The day's rows only: the range of g is a little wider than the day, so that float
    -- rounding at midnight neither loses a row nor puts one outside its partition.
    WHERE at >= %(day_from)s AND at < %(day_to)s
) AS calls
"""

IPS_SQL = """
INSERT INTO {ip} (project_id, api_key_id, ip, first_seen, last_seen, requests)
SELECT project_id, api_key_id, ip, min(created_at), max(created_at), count(*)
FROM {record} WHERE api_key_id IS NOT NULL AND ip IS NOT NULL
GROUP BY project_id, api_key_id, ip
"""


@dataclass(frozen=True)
class World:
    """What the scale stage made: the busiest project and key, and their filter values."""

    slug: str
    project_id: int
    key_id: int  # the busiest key, of that project
    client_token: str  # a public id minted by it
    rows: int


def make_world(fixture: app_access.Fixture) -> dict[str, Any]:
    """Projects, keys, client tokens and PATs, made with the app's own services."""
    projects = [fixture.project_id] + [
        app_access.make_project(fixture, f"Scale {n}") for n in range(1, PROJECTS)
    ]
    keys = [app_access.make_key(projects[n % PROJECTS], f"scale-{n}", fixture) for n in range(KEYS)]
    key_projects = [projects[n % PROJECTS] for n in range(KEYS)]
    cts = [
        app_access.make_client_token(keys[n % 3], key_projects[n % 3]) for n in range(CLIENT_TOKENS)
    ]
    pats = [app_access.make_pat(fixture, f"scale-{n}", projects) for n in range(PATS)]
    return {
        "projects": projects,
        "keys": keys,
        "key_projects": key_projects,
        "cts": [pk for pk, _ in cts],
        "ct_public": [public for _, public in cts],
        "ct_keys": [keys[n % 3] for n in range(CLIENT_TOKENS)],
        "ct_projects": [key_projects[n % 3] for n in range(CLIENT_TOKENS)],
        "pats": pats,
    }


def seed(fixture: app_access.Fixture, rows: int) -> World:
    from django.db import connection, transaction
    from django.utils import timezone

    world = make_world(fixture)
    tables = app_access.usage_tables()
    now = timezone.now()
    start = now - timedelta(days=DAYS)
    app_access.ensure_partitions(DAYS + 2)
    params: dict[str, Any] = {
        **{name: world[name] for name in ("projects", "keys", "key_projects", "cts", "ct_keys")},
        "ct_projects": world["ct_projects"],
        "pats": world["pats"],
        "n_projects": PROJECTS,
        "n_keys": KEYS,
        "n_cts": CLIENT_TOKENS,
        "n_pats": PATS,
        "rows": rows,
        "start": start,
        "span": f"{DAYS} days",
    }
    say(f"\n-- scale: seeding {rows:,} usage rows, {PROJECTS} projects, {KEYS} keys --")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET statement_timeout = 0")
        cursor.execute("SET synchronous_commit = off")
        # The index builds at ATTACH sort in memory instead of in many small runs on disk.
        cursor.execute("SET maintenance_work_mem = '512MB'")
        cursor.execute("SET work_mem = '256MB'")  # and the roll-ups' GROUP BY hashes
        cursor.execute("SELECT setseed(0.7)")
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id')", [tables["record"]])
        params["ids"] = cursor.fetchone()[0]
        day = start.date()
        while day <= now.date():
            load_day(cursor, tables["record"], params, day, start=start, rows=rows)
            day += timedelta(days=1)
        written = time.perf_counter() - started
        with transaction.atomic():
            cursor.execute(HOURS_SQL.format(**tables, keys="api_key_id IS NOT NULL"))
            cursor.execute(IPS_SQL.format(**tables))
            for sql in project_rollups_sql(tables, keys="TRUE"):
                cursor.execute(sql)
        rolled = time.perf_counter() - started - written
        for table in tables.values():
            cursor.execute(f"VACUUM (ANALYZE) {table}")
        cursor.execute("RESET statement_timeout")
    total = time.perf_counter() - started
    say(
        f"  seeded in {total:.0f} s: rows {written:.0f} s, roll-ups {rolled:.0f} s, "
        f"VACUUM ANALYZE {total - written - rolled:.0f} s"
    )
    key_id, project_id = app_access.busiest_key()
    public = next(
        p for p, k in zip(world["ct_public"], world["ct_keys"], strict=True) if k == key_id
    )
    return World(app_access.project_slug(project_id), project_id, key_id, public, rows)


def load_day(
    cursor: Any, table: str, params: dict[str, Any], day: date, *, start: datetime, rows: int
) -> None:
    """One day's rows into its partition, built apart and then attached.

    Inserting 10^7 rows into the partitioned table maintains its seven indexes row by row;
    once they outgrow shared_buffers every insert reads and writes index pages at random
    and seeding slows to a crawl past a million rows. Instead the day's empty partition is
    replaced by a plain table of the same columns and defaults, filled without an index,
    and attached: PostgreSQL then builds each of the parent's indexes on it with one sort,
    exactly the indexes (and the unique constraint) the real partition would have. A
    partition takes no ids of its own from the parent's identity, so the rows draw theirs
    from its sequence, in the order they are made, as the writer's would be.
    """
    from django.db import connection, transaction

    from usage.retention import partition_name

    q = connection.ops.quote_name
    name = partition_name(day)
    day_from = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    day_to = day_from + timedelta(days=1)
    per_second = rows / (DAYS * 86400)
    first = max(0, int((day_from - start).total_seconds() * per_second) - 2)
    last = min(rows - 1, int((day_to - start).total_seconds() * per_second) + 2)
    if last < first:
        return
    with transaction.atomic():
        cursor.execute(f"DROP TABLE IF EXISTS {q(name)}")
        cursor.execute(f"CREATE TABLE {q(name)} (LIKE {q(table)} INCLUDING CONSTRAINTS)")
        cursor.execute(
            SEED_SQL.format(partition=q(name)),
            {**params, "first": first, "last": last, "day_from": day_from, "day_to": day_to},
        )
        cursor.execute(
            f"ALTER TABLE {q(table)} ATTACH PARTITION {q(name)} "
            f"FOR VALUES FROM ('{day_from.isoformat()}') TO ('{day_to.isoformat()}')"
        )


def timed(client: Any, url: str, runs: int) -> float:
    """Median ms of `runs` GETs after one untimed warm-up."""
    answer = client.get(url)
    if answer.status_code != 200:
        raise RuntimeError(f"GET {url} answered {answer.status_code}")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def cases(world: World) -> list[tuple[str, str, str, float | None]]:
    """(page, filter, url, target ms or None where the issue sets none) of every timing."""
    overview = f"/projects/{world.slug}/usage/"
    calls = f"/projects/{world.slug}/usage/calls/"
    key_log = app_access.usage_page_path(world.slug, world.key_id)
    frequent, rare = app_access.addresses_of(world.key_id)
    since = (app_access.now() - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    until = (app_access.now() - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    request_id = app_access.some_request_id(world.project_id)
    found: list[tuple[str, str, str, float | None]] = [
        # The project's front page: its last 24 hours' calls, refusals and busiest keys.
        ("project home", "none", f"/projects/{world.slug}/", OVERVIEW_24H_MS)
    ]
    for range_name, target in (("30d", OVERVIEW_30D_MS), ("24h", OVERVIEW_24H_MS)):
        for label, query in (
            ("none", {}),
            ("key", {"key": world.key_id}),
            ("outcome=server_error", {"outcome": "server_error"}),
            ("ip frequent", {"ip": frequent}),
        ):
            url = f"{overview}?{urlencode({'range': range_name, **query})}"
            # The overview's targets are for the page as it opens; "any single
            # filter" is the call logs'. A narrowed overview is timed all the same.
            found.append((f"overview {range_name}", label, url, target if not query else None))
    for label, query in (
        ("none", {}),
        ("outcome=server_error", {"outcome": "server_error"}),
        ("status=500", {"status": 500}),
        ("ip frequent", {"ip": frequent}),
        ("ip rare", {"ip": rare}),
        ("since/until", {"since": since, "until": until}),
        ("client token", {"client_token": world.client_token}),
    ):
        found.append(("key log", label, f"{key_log}?{urlencode(query)}", LOG_MS))
    for label, query in (
        ("none", {}),
        ("key", {"key": world.key_id}),
        ("token kind=PAT", {"token_kind": "personal_access_token"}),
        ("outcome=revoked_key", {"outcome": "revoked_key"}),
        ("status=500", {"status": 500}),
        ("ip frequent", {"ip": frequent}),
        ("ip rare", {"ip": rare}),
        ("request id", {"request_id": request_id}),
    ):
        found.append(("project log", label, f"{calls}?{urlencode(query)}", LOG_MS))
    return found


def run_scale(fixture: app_access.Fixture, rows: int, runs: int) -> list[str]:
    """Seed, time every page and filter, count detection's partitions; the report lines."""
    from django.test import Client

    world = seed(fixture, rows)
    app_access.collect_static()
    client = Client(HTTP_HOST="127.0.0.1")
    name, _, value = app_access.signed_in_cookie(fixture.user_id).partition("=")
    client.cookies[name] = value
    lines = [
        f"scale: {world.rows:,} usage rows; project {world.slug} "
        f"({app_access.project_rows(world.project_id):,} rows), busiest key "
        f"({app_access.key_rows(world.key_id):,} rows); median of {runs} in-process GETs "
        "after a warm-up, signed in as the owner",
        f"  {'page':<16} {'filter':<22} {'median ms':>10} {'target':>8}",
    ]
    say(lines[0])
    for page, label, url, target in cases(world):
        try:
            median = timed(client, url, runs)
            if target is None:
                goal, verdict = "–", "(no target)"
            else:
                goal, verdict = f"≤ {target:.0f}", "met" if median <= target else "NOT met"
            lines.append(f"  {page:<16} {label:<22} {median:>10.1f} {goal:>8}  {verdict}")
        except RuntimeError as error:
            lines.append(f"  {page:<16} {label:<22} NOT MEASURED: {error}")
        say(lines[-1])
    lines.append("  " + detection_partitions())
    say(lines[-1])
    return lines


def detection_partitions() -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the detector's read of the last minute's rows."""
    from django.db import connection

    query, params, partitions = app_access.detection_read_of_last_minute()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {query}", params)
        plan = cursor.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    scanned: set[str] = set()

    def walk(node: dict[str, Any]) -> None:
        if "Relation Name" in node and node.get("Actual Loops", 1):
            scanned.add(node["Relation Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return (
        f"detection, one minute's new rows: {len(scanned)} of {partitions} partitions read "
        f"({', '.join(sorted(scanned))}), {plan[0]['Execution Time']:.1f} ms"
    )
