"""The models as the database stands after some apps are migrated back: for the tests of a
data migration, which write rows as an older release would have and migrate forward."""

from __future__ import annotations

from django.apps.registry import Apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def migrated_back(targets: list[tuple[str, str]]) -> Apps:
    """Migrate each app of `targets` back to its migration (and with it every migration of
    another app that depends on a later one), and return the models of every migration
    still applied. Read from the other apps' latest migrations instead, a later migration
    of another app that depends on a later one of these (alerts' on apikeys') would bring
    back columns the database no longer has."""
    MigrationExecutor(connection).migrate(targets)
    loader = MigrationExecutor(connection).loader
    return loader.project_state(sorted(loader.applied_migrations), at_end=True).apps


def migrated_to_the_end() -> None:
    """Every app at its latest migration again."""
    MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
