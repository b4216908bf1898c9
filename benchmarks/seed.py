"""A month of one key's API calls, written straight into PostgreSQL for `make bench`.

One INSERT … SELECT over generate_series writes the log rows; the roll-ups that the usage
pages read (UsageHour per key per hour, UsageIp per key per address, and the project
overview's ProjectUsageHour and ProjectAddressDay) are then built from those rows with
INSERT … SELECT … GROUP BY, so the pages' totals agree with their log.
The mix is deterministic (setseed), so every run seeds the same data.
"""

from __future__ import annotations

from typing import Any

# Share of calls per kind; the rest of each row follows from its kind.
#   r < .900  200  POST /v1/agents/my-agent/invoke
#   r < .950  200  POST /v1/agents/my-agent/chat
#   r < .975  400  invalid_field_value          client_error
#   r < .985  404  agent_not_found              client_error
#   r < .993  429  rate_limit_exceeded          client_error
#   r < .997  403  insufficient_permissions     auth_failure (PUT with a key without write)
#   else      500  internal_error               server_error
# Addresses: most calls from the customer's two servers, some from a NAT range, a tail of
# one-off addresses.
#
# What each column of a seeded row holds; `r` picks the kind of call, `a` the address and
# client, `l` the latency, `g` is the row's number. A column added to UsageRecord later
# gets its model default (or NULL), so the seed keeps working as the model grows.
KIND = """CASE
    WHEN r < .900 THEN 'invoke' WHEN r < .950 THEN 'chat' WHEN r < .975 THEN 'invalid'
    WHEN r < .985 THEN 'missing_agent' WHEN r < .993 THEN 'limited' WHEN r < .997 THEN 'deploy'
    ELSE 'broken' END"""
COLUMNS = {
    "created_at": "now() - %(span)s::interval + (g::float8 / %(rows)s) * %(span)s::interval",
    "project_id": "%(project_id)s",
    "api_key_id": "%(api_key_id)s",
    "token_kind": "'api_key'",
    "method": "CASE WHEN kind = 'deploy' THEN 'PUT' ELSE 'POST' END",
    "agent": "CASE WHEN kind = 'missing_agent' THEN 'support-bot' ELSE 'my-agent' END",
    "path": """CASE kind
        WHEN 'chat' THEN '/v1/agents/my-agent/chat'
        WHEN 'missing_agent' THEN '/v1/agents/support-bot/invoke'
        WHEN 'deploy' THEN '/v1/agents/my-agent'
        ELSE '/v1/agents/my-agent/invoke' END""",
    "status": """CASE kind
        WHEN 'invoke' THEN 200 WHEN 'chat' THEN 200 WHEN 'invalid' THEN 400
        WHEN 'missing_agent' THEN 404 WHEN 'limited' THEN 429 WHEN 'deploy' THEN 403
        ELSE 500 END""",
    "error_code": """CASE kind
        WHEN 'invalid' THEN 'invalid_field_value' WHEN 'missing_agent' THEN 'agent_not_found'
        WHEN 'limited' THEN 'rate_limit_exceeded' WHEN 'deploy' THEN 'insufficient_permissions'
        WHEN 'broken' THEN 'internal_error' ELSE '' END""",
    "outcome": """CASE kind
        WHEN 'invoke' THEN 'ok' WHEN 'chat' THEN 'ok' WHEN 'deploy' THEN 'auth_failure'
        WHEN 'broken' THEN 'server_error' ELSE 'client_error' END""",
    "latency_us": """CASE WHEN kind IN ('invoke', 'chat')
        THEN 2500 + (power(l, 4) * 400000)::int ELSE 800 + (l * 4000)::int END""",
    "ip": """CASE
        WHEN a < .55 THEN '10.20.0.11'
        WHEN a < .85 THEN '10.20.0.12'
        WHEN a < .97 THEN '203.0.113.' || (1 + (a * 10000)::int %% 24)
        ELSE '198.51.100.' || (1 + (a * 100000)::int %% 250) END::inet""",
    "user_agent": """CASE
        WHEN a < .85 THEN 'reminix-python/1.4.2' WHEN a < .97 THEN 'reminix-node/2.1.0'
        ELSE 'curl/8.5.0' END""",
    "request_id": "'req_' || substr(md5(g::text), 1, 24)",
}

SEED_SQL = """
INSERT INTO {record} ({names})
SELECT {values}
FROM (
    SELECT g, r, a, l, {kind} AS kind
    FROM (
        SELECT g, random() AS r, random() AS a, random() AS l
        FROM generate_series(1, %(rows)s) AS g
    ) AS draws
) AS calls
"""

# The hourly roll-up as the writer keeps it, built in one GROUP BY over the rows `{keys}`
# selects (one key's here; every key's in usage_scale.py). Every roll-up's rows are laid
# on disk as the writer lays them, in the order of their first call: an hour's rows lie
# together, instead of strewn over the table in hash order, which would make a day's
# read touch ten times the pages it touches in service.
HOURS_SQL = """
INSERT INTO {hour} (project_id, api_key_id, hour, requests, ok, client_errors, auth_failures,
                    revoked_key_uses, server_errors, latency_us_total)
SELECT project_id, api_key_id, date_trunc('hour', created_at), count(*),
       count(*) FILTER (WHERE outcome = 'ok'),
       count(*) FILTER (WHERE outcome = 'client_error'),
       count(*) FILTER (WHERE outcome = 'auth_failure'),
       count(*) FILTER (WHERE outcome = 'revoked_key'),
       count(*) FILTER (WHERE outcome = 'server_error'),
       sum(latency_us)
FROM {record} WHERE {keys}
GROUP BY project_id, api_key_id, date_trunc('hour', created_at)
ORDER BY 3, min(created_at)
"""

# The project overview's roll-ups as the writer keeps them (usage/writer.py), over the rows
# `{keys}` selects: calls per project hour (or day, with `{unit}` and the tables of that
# unit) by token type, key, PAT, outcome and agent, and by address and outcome.
PROJECT_CALLS_SQL = """
INSERT INTO {table} (project_id, start, token_kind, api_key_id, personal_token_id,
                     outcome, agent, requests, without_address, last_call)
SELECT project_id, date_trunc('{unit}', created_at), token_kind, api_key_id,
       personal_token_id, outcome, agent, count(*), count(*) FILTER (WHERE ip IS NULL),
       max(created_at)
FROM {record} WHERE project_id IS NOT NULL AND {keys}
GROUP BY project_id, date_trunc('{unit}', created_at), token_kind, api_key_id,
         personal_token_id, outcome, agent
ORDER BY 2, min(created_at)
"""

PROJECT_ADDRESSES_SQL = """
INSERT INTO {table} (project_id, start, ip, outcome, requests, first_seen, last_seen)
SELECT project_id, date_trunc('{unit}', created_at), ip, outcome, count(*),
       min(created_at), max(created_at)
FROM {record} WHERE project_id IS NOT NULL AND ip IS NOT NULL AND {keys}
GROUP BY project_id, date_trunc('{unit}', created_at), ip, outcome
ORDER BY 2, min(created_at)
"""


def project_rollups_sql(tables: dict[str, str], keys: str) -> list[str]:
    """The statements that build the project overview's four roll-ups from the log."""
    return [
        sql.format(record=tables["record"], table=tables[f"{name}_{unit}"], unit=unit, keys=keys)
        for unit in ("hour", "day")
        for name, sql in (
            ("project_calls", PROJECT_CALLS_SQL),
            ("project_addresses", PROJECT_ADDRESSES_SQL),
        )
    ]


IPS_SQL = """
INSERT INTO {ip} (project_id, api_key_id, ip, first_seen, last_seen, requests)
SELECT project_id, api_key_id, ip, min(created_at), max(created_at), count(*)
FROM {record} WHERE api_key_id = %(api_key_id)s AND ip IS NOT NULL
GROUP BY project_id, api_key_id, ip
"""

LAST_USED_SQL = """
UPDATE {key} SET (last_used_at, last_used_ip) = (
    SELECT created_at, ip FROM {record}
    WHERE api_key_id = %(api_key_id)s AND outcome = 'ok'
    ORDER BY created_at DESC, id DESC LIMIT 1
) WHERE id = %(api_key_id)s
"""


def seed_usage(
    cursor: Any,
    *,
    fields: list[tuple[str, bool, Any]],
    tables: dict[str, str],
    project_id: int,
    api_key_id: int,
    rows: int,
    days: int = 30,
) -> dict[str, int]:
    """Write `rows` calls of one key over the last `days` days, and their roll-ups.

    `fields` lists UsageRecord's columns as (column, nullable, model default); `tables`
    maps record, hour, ip and key to table names. The caller owns the transaction; the
    session must be in UTC (Django's connections are), since the hourly roll-up truncates
    in the session's time zone.
    """
    params: dict[str, Any] = {
        "rows": rows,
        "span": f"{days} days",
        "project_id": project_id,
        "api_key_id": api_key_id,
    }
    names, values = [], []
    for column, nullable, default in fields:
        if column in COLUMNS:
            names.append(column)
            values.append(COLUMNS[column])
        elif default is not None:
            names.append(column)
            values.append(f"%({column})s")
            params[column] = default
        elif not nullable:
            raise ValueError(f"The seed does not know what to put in {column}.")
    sql = SEED_SQL.format(
        record=tables["record"], names=", ".join(names), values=",\n    ".join(values), kind=KIND
    )
    cursor.execute("SET LOCAL synchronous_commit = off")
    cursor.execute("SELECT setseed(0.42)")
    cursor.execute(sql, params)
    written = cursor.rowcount
    cursor.execute(HOURS_SQL.format(**tables, keys="api_key_id = %(api_key_id)s"), params)
    hours = cursor.rowcount
    cursor.execute(IPS_SQL.format(**tables), params)
    for sql in project_rollups_sql(tables, keys="api_key_id = %(api_key_id)s"):
        cursor.execute(sql, params)
    addresses = cursor.rowcount
    cursor.execute(LAST_USED_SQL.format(**tables), params)
    return {"rows": written, "hours": hours, "addresses": addresses}
