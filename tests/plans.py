"""PostgreSQL's plan of a statement, as the plan tests read it (an index walked in a page's
order, how many rows a page took from a table).

The tables are tiny in a test, where reading one whole is cheapest: with sequential scans
said not to be, the planner shows which index, if any, it can walk. Bitmap scans are off
too unless asked for: they read in no order, and the planner takes one (with a sort) once
other tests' rows have been analysed. SET LOCAL: for the test's own transaction only.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection


def plan_nodes(
    statement: Any, params: Any = (), *, analyze: bool = False, bitmap_scans: bool = False
) -> list[dict]:
    """Every node of the plan of `statement` (SQL, or a QuerySet), the top one first;
    with `analyze`, as run (EXPLAIN ANALYZE: actual rows and loops)."""
    if hasattr(statement, "query"):
        statement, params = statement.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        if not bitmap_scans:
            cursor.execute("SET LOCAL enable_bitmapscan = off")
        options = "ANALYZE, FORMAT JSON" if analyze else "FORMAT JSON"
        cursor.execute(f"EXPLAIN ({options}) {statement}", params)
        plan = cursor.fetchone()[0]
    plan = plan if isinstance(plan, list) else json.loads(plan)
    nodes: list[dict] = []

    def walk(node: dict) -> None:
        nodes.append(node)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return nodes


def rows_read(nodes: list[dict], table: str) -> int:
    """How many rows an analysed plan took from `table`, kept or filtered out, over all
    its loops."""
    return sum(
        (node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0))
        * node.get("Actual Loops", 1)
        for node in nodes
        if node.get("Relation Name") == table
    )


LOG_TABLE = "apikeys_usagerecord"


def log_scans(nodes: list[dict]) -> list[dict]:
    """The plan's nodes that read the usage log (its table or its partitions)."""
    return [n for n in nodes if n.get("Relation Name", "").startswith(LOG_TABLE)]


def log_rows_read(nodes: list[dict]) -> int:
    """Rows an analysed plan took from the log (its partitions), kept or filtered out."""
    return sum(
        (n.get("Actual Rows", 0) + n.get("Rows Removed by Filter", 0)) * n.get("Actual Loops", 1)
        for n in log_scans(nodes)
    )


def assert_walked_in_order_reading(
    querysets: list[Any], orders: list[tuple[str, ...]], *, rows: int, first: int
) -> None:
    """Each of `querysets`, in each of `orders`, has a plan without a sort that takes
    exactly `rows` rows from the log for its first `first`. Whether such a plan exists,
    not which one the planner likes best on a few hundred rows and the statistics other
    tests left: it did sort them in one CI run."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_sort = off")
    for records in querysets:
        for order in orders:
            nodes = plan_nodes(records.order_by(*order)[:first], analyze=True)
            assert not [n for n in nodes if n["Node Type"] == "Sort"], nodes
            assert log_rows_read(nodes) == rows, log_scans(nodes)
