"""`ip__in_network="45.83.64.0/24"`: an address column inside a network.

On PostgreSQL the column is `inet` and `<<=` says it; with the network a literal, the
planner turns it into a range on a btree index over the column (network_subset_support),
so a (key, ip, created_at) index serves it. SQLite stores addresses as text: a function
registered on each of its connections (core.networks.in_network) answers instead,
row by row, which is what a local database of a few thousand calls needs.
"""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created
from django.db.models import GenericIPAddressField, Lookup, Q
from django.db.models.sql.compiler import SQLCompiler

from core.networks import in_network

SQLITE_FUNCTION = "reminix_in_network"

type Sql = tuple[str, tuple[Any, ...]]


class InNetwork(Lookup):
    """The address is inside the network given (canonical, from filter_network)."""

    lookup_name = "in_network"
    # The field's own preparation would clean the network as one address, and refuse it.
    prepare_rhs = False

    def _sides(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, str, tuple[Any, ...]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return lhs, rhs, (*lhs_params, *rhs_params)

    def as_sql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        lhs, rhs, params = self._sides(compiler, connection)
        return f"{SQLITE_FUNCTION}({lhs}, {rhs})", params

    def as_postgresql(self, compiler: SQLCompiler, connection: BaseDatabaseWrapper) -> Sql:
        lhs, rhs, params = self._sides(compiler, connection)
        return f"{lhs} <<= ({rhs})::inet", params


def address_or_network(value: str, *, field: str = "ip") -> Q:
    """`field` is the address, or inside the network (`value` holds a "/" then), as
    core.forms.IpOrNetworkFilterField cleans it."""
    return Q(**{f"{field}__in_network" if "/" in value else field: value})


def _on_sqlite(sender: object, connection: BaseDatabaseWrapper, **kwargs: object) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function(SQLITE_FUNCTION, 2, in_network, deterministic=True)


def register() -> None:
    GenericIPAddressField.register_lookup(InNetwork)
    connection_created.connect(_on_sqlite, dispatch_uid="core.network_lookup")
