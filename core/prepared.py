"""A statement the hot paths run many times, prepared once per PostgreSQL connection.

Django's PostgreSQL cursors bind parameters on the client and never prepare: each call
sends the whole statement as text, which PostgreSQL parses and plans again. These run on
Django's own connection (in its transaction, with its error wrapping) through a cursor
that binds on the server and prepares the statement the first time it sees it. Tests that
count queries see them, as they see a Django cursor's. Other databases: Django's cursor.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import connection


def fetch_all(sql: str, params: Any) -> list[tuple[Any, ...]]:
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    import psycopg

    connection.ensure_connection()
    started = time.perf_counter()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        rows = cursor.fetchall() if cursor.description else []
    if connection.queries_logged:
        duration = time.perf_counter() - started
        connection.queries_log.append({"sql": sql, "time": f"{duration:.3f}"})
    return rows


def fetch_one(sql: str, params: Any) -> tuple[Any, ...] | None:
    rows = fetch_all(sql, params)
    return rows[0] if rows else None
