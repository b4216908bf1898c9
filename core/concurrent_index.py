"""An index added to a table that is written while a deploy migrates (the execution log,
the kept idempotency answers): on PostgreSQL built CONCURRENTLY, so writes go on meanwhile
(the migration using it sets `atomic = False`: CONCURRENTLY never runs in a transaction).

Such a build waits for every transaction that is writing the table when it starts, so it
runs with no statement timeout and no lock timeout: one write still open after the
connections' lock_timeout would otherwise fail the deploy. A build that fails leaves an
index of the name marked invalid, which PostgreSQL keeps up but never reads: it is dropped
and built again, never taken for the index (as IF NOT EXISTS alone would). Elsewhere
(SQLite) it is an ordinary CREATE INDEX.
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
        name = self.index.name
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
            cursor.execute("SET lock_timeout = 0")
            try:
                cursor.execute(
                    "SELECT i.indisvalid FROM pg_index i JOIN pg_class c "
                    "ON c.oid = i.indexrelid WHERE c.relname = %s",
                    [name],
                )
                found = cursor.fetchone()
                if found is not None and not found[0]:
                    cursor.execute(f"DROP INDEX CONCURRENTLY {name}")
                cursor.execute(
                    f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {self.table} {self.columns}"
                )
            finally:
                cursor.execute("RESET statement_timeout")
                cursor.execute("RESET lock_timeout")

    def drop(self, apps: Any, schema_editor: Any) -> None:
        schema_editor.remove_index(apps.get_model(self.app_label, self.model_name), self.index)
