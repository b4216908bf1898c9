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
