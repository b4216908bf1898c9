"""An index added to a table that is written while a deploy migrates (the execution log,
the kept idempotency answers): on PostgreSQL built CONCURRENTLY, so writes go on meanwhile
(the migration using it sets `atomic = False`: CONCURRENTLY never runs in a transaction).

Such a build waits for every transaction that is writing the table when it starts, so it
runs with no statement timeout and no lock timeout: one write still open after the
connections' lock_timeout would otherwise fail the deploy. A build that fails leaves an
index of the name marked invalid, which PostgreSQL keeps up but never reads: it is dropped
and built again, never taken for the index (as IF NOT EXISTS alone would). Elsewhere
(SQLite) it is an ordinary CREATE INDEX.

PostgreSQL cannot build an index CONCURRENTLY on a partitioned table (the usage log,
partitioned by day): it is made on the parent alone (ON ONLY, at once, invalid until
complete), then built CONCURRENTLY on each partition and attached to it; with the last
partition attached it is valid, and every partition attached later gets its own copy. An
ordinary CREATE INDEX on the parent would hold off every insert for the whole build and
fail at the connections' statement timeout on a big log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import migrations, models


@dataclass(frozen=True)
class ConcurrentIndex:
    """`index` on `app_label.model_name`, whose table is `table`; `columns` is the index's
    column list as PostgreSQL writes it ("(project_id, agent_name, id DESC)")."""

    app_label: str
    model_name: str
    index: models.Index
    table: str
    columns: str

    def operation(self) -> migrations.SeparateDatabaseAndState:
        """For the migration's `operations`: the index in Django's state, built as above."""
        return migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddIndex(model_name=self.model_name.lower(), index=self.index)
            ],
            database_operations=[migrations.RunPython(self.create, self.drop)],
        )

    def create(self, apps: Any, schema_editor: Any) -> None:
        if schema_editor.connection.vendor != "postgresql":
            schema_editor.add_index(apps.get_model(self.app_label, self.model_name), self.index)
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            cursor.execute("SET lock_timeout = 0")
            try:
                if _is_partitioned(cursor, self.table):
                    self._create_partitioned(cursor)
                else:
                    _build(cursor, self.index.name, self.table, self.columns)
            finally:
                cursor.execute("RESET statement_timeout")
                cursor.execute("RESET lock_timeout")

    def _create_partitioned(self, cursor: Any) -> None:
        name = self.index.name
        cursor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON ONLY {self.table} {self.columns}")
        # A partition made while this runs gets its copy on attaching: read them again
        # until each has one.
        while partitions := _partitions_without(cursor, self.table, name):
            for partition in partitions:
                own = _partition_index_name(name, partition)
                _build(cursor, own, partition, self.columns)
                cursor.execute(f"ALTER INDEX {name} ATTACH PARTITION {own}")

    def drop(self, apps: Any, schema_editor: Any) -> None:
        schema_editor.remove_index(apps.get_model(self.app_label, self.model_name), self.index)


def _valid(cursor: Any, name: str) -> bool | None:
    """Whether the index `name` is valid; None if there is none."""
    cursor.execute(
        "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
        "ON c.oid = i.indexrelid WHERE c.relname = %s",
        [name],
    )
    found = cursor.fetchone()
    return None if found is None else bool(found[0])


def _build(cursor: Any, name: str, table: str, columns: str) -> None:
    """`name` on `table` (not a partitioned one), CONCURRENTLY; an invalid one built again."""
    if _valid(cursor, name) is False:
        cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
    cursor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} {columns}")


def _is_partitioned(cursor: Any, table: str) -> bool:
    cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [table])
    return cursor.fetchone()[0] == "p"


def _partitions_without(cursor: Any, table: str, index: str) -> list[str]:
    """The partitions of `table` with no index attached to the partitioned `index`."""
    cursor.execute(
        "SELECT p.inhrelid::regclass::text FROM pg_inherits p WHERE p.inhparent = %s::regclass "
        "AND NOT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_index x ON x.indexrelid = "
        "i.inhrelid WHERE i.inhparent = %s::regclass AND x.indrelid = p.inhrelid) "
        "ORDER BY 1",
        [table, index],
    )
    return [row[0] for row in cursor.fetchall()]


def _partition_index_name(index: str, partition: str) -> str:
    """The partition's own index: the index's name and the partition's day (or `default`),
    within PostgreSQL's 63 characters."""
    return f"{index}_{partition.rsplit('_', 1)[-1]}"[:63]
