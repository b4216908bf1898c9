"""Everything one API call needs from the database, in one statement.

The token by its keyed hash, with its project; for a client token the key or PAT that
minted it, that PAT's user and whether they are still a member; for a PAT its user, the
project named in X-Project, the membership and the token's project restriction; for the
Client API whether the caller's Origin is one its project allows; and, when the endpoint
acts on a row of its project (an agent by name), that row. One round trip, by a statement
built once per process from the models' own table and column names, never by the ORM per
call. On PostgreSQL it is a server-side prepared statement (parsed and planned once per
connection); SQLite caches its statements itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection
from django.db.models import Field, Model

from accounts.models import AllowedOrigin, Membership, Passkey, Project, TotpDevice, User
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from apikeys.tokens import TokenKind
from core.prepared import fetch_one

type Converter = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Resource:
    """A row of the caller's project that an endpoint acts on, named in its URL:
    `Resource(Agent, field="name", url_kwarg="name")`. Looked up with the token."""

    model: type[Model]
    field: str
    url_kwarg: str
    # Values no row can have (a NUL byte PostgreSQL would refuse, any odd character) are
    # never sent to the database: the endpoint then finds no row.
    accepts: Callable[[str], bool] = lambda value: True  # noqa: E731

    def identity(self, project_id: int, value: str) -> str:
        """What a change to this row is announced as (core.invalidation.changed)."""
        return f"{self.model._meta.label_lower}:{project_id}:{value}"


@dataclass(frozen=True, slots=True)
class Found:
    """What the statement found for a token (None: no token has that hash)."""

    kind: TokenKind
    project: Project | None
    api_key: ApiKey | None = None
    client_token: ClientToken | None = None
    personal_token: PersonalAccessToken | None = None
    user: User | None = None
    # The PAT's user (directly, or through the PAT that minted a client token) is a member
    # of `project`; and, for a PAT restricted to some projects, `project` is one of them.
    is_member: bool = False
    restricted_elsewhere: bool = False
    origin_allowed: bool = False
    resource: Model | None = None
    # The API key was found by the secret it was rolled from, not its current one.
    previous_secret: bool = False
    # The characters of text (JSON included) its row held: what a worker's copy of it
    # weighs (api/callers.py), which its owner can make large (a client token's contexts,
    # an agent's config).
    chars: int = 0


# -- Building the statements ----------------------------------------------------------------


class _Table:
    """A model's columns in the statement, and how to turn them back into an instance."""

    def __init__(self, model: type[Model], alias: str, fields: Sequence[str] | None = None):
        self.model = model
        self.alias = alias
        concrete = [f for f in model._meta.concrete_fields if fields is None or f.name in fields]
        self.fields: list[Field[Any, Any]] = concrete
        self.attnames = [f.attname for f in concrete]
        self.converters = [_converters(f) for f in concrete]

    def columns(self) -> str:
        q = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{q(f.column or f.attname)}" for f in self.fields)

    def build(self, values: Sequence[Any]) -> Model | None:
        """The instance for these values; None for a LEFT JOIN that matched nothing."""
        if values[0] is None:
            return None
        converted = []
        for value, converters in zip(values, self.converters, strict=True):
            for convert in converters:
                value = convert(value)
            converted.append(value)
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, converted)

    def __len__(self) -> int:
        return len(self.fields)


def _converters(field: Field[Any, Any]) -> list[Converter]:
    """What the ORM would apply to this column's raw value (backend's, then the field's)."""
    expression = field.cached_col
    found = [*connection.ops.get_db_converters(expression), *field.get_db_converters(connection)]
    return [partial(_apply, convert, expression) for convert in found]


def _apply(convert: Callable[..., Any], expression: Any, value: Any) -> Any:
    return convert(value, expression, connection)


def _table(model: type[Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _column(model: type[Model], name: str) -> str:
    field = model._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None
    return connection.ops.quote_name(field.column)


@dataclass(frozen=True)
class _Statement:
    sql: str
    tables: list[_Table]
    flags: int  # trailing boolean columns


USER_FIELDS = ("id", "email", "name", "is_active")  # never the password hash


@cache
def _statement(kind: TokenKind, resource: Resource | None) -> _Statement:
    """The statement for a token of `kind` (and the endpoint's resource): built once."""
    q = connection.ops.quote_name
    # A member, and, where the owners require a second factor, one who has one (a
    # confirmed authenticator app or a passkey): the policy holds for PATs too.
    second_factor = (
        f"(NOT p.{_column(Project, 'require_two_factor')} OR EXISTS (SELECT 1 FROM "
        f"{_table(TotpDevice)} d WHERE d.{_column(TotpDevice, 'user')} = u.{q('id')} AND "
        f"d.{_column(TotpDevice, 'confirmed_at')} IS NOT NULL) OR EXISTS (SELECT 1 FROM "
        f"{_table(Passkey)} k2 WHERE k2.{_column(Passkey, 'user')} = u.{q('id')}))"
    )

    def member(since: str = "") -> str:
        return (
            f"(EXISTS (SELECT 1 FROM {_table(Membership)} m WHERE m.{_column(Membership, 'user')} "
            f"= u.{q('id')} AND m.{_column(Membership, 'project')} = p.{q('id')}{since}) "
            f"AND {second_factor})"
        )

    through = PersonalAccessToken.projects.through
    pat_projects = _table(through)
    pat_column = q(through._meta.get_field("personalaccesstoken").column)
    project_column = q(through._meta.get_field("project").column)

    def restricted_elsewhere(pat_alias: str) -> str:
        # The flag, not the list, says whether the token is restricted: one whose projects
        # were all deleted reaches none (fails closed).
        restricted = f"{pat_alias}.{_column(PersonalAccessToken, 'projects_restricted')}"
        return (
            f"({restricted} AND NOT EXISTS (SELECT 1 FROM {pat_projects} r WHERE "
            f"r.{pat_column} = {pat_alias}.id AND r.{project_column} = p.{q('id')}))"
        )

    origin = (
        f"EXISTS (SELECT 1 FROM {_table(AllowedOrigin)} o WHERE o."
        f"{_column(AllowedOrigin, 'project')} = p.{q('id')} AND o."
        f"{_column(AllowedOrigin, 'origin')} = %(origin)s)"
    )
    project = _Table(Project, "p")
    user = _Table(User, "u", USER_FIELDS)
    if kind is TokenKind.API_KEY:
        token = _Table(ApiKey, "t")
        tables = [token, project]
        joins = f"JOIN {_table(Project)} p ON p.id = t.{_column(ApiKey, 'project')}"
        flags = ["FALSE", "FALSE", "FALSE"]
    elif kind is TokenKind.CLIENT_TOKEN:
        token = _Table(ClientToken, "t")
        key, pat = _Table(ApiKey, "k"), _Table(PersonalAccessToken, "pt")
        tables = [token, project, key, pat, user]
        joins = (
            f"JOIN {_table(Project)} p ON p.id = t.{_column(ClientToken, 'project')} "
            f"LEFT JOIN {_table(ApiKey)} k ON k.id = t.{_column(ClientToken, 'api_key')} "
            f"LEFT JOIN {_table(PersonalAccessToken)} pt "
            f"ON pt.id = t.{_column(ClientToken, 'personal_token')} "
            f"LEFT JOIN {_table(User)} u ON u.id = pt.{_column(PersonalAccessToken, 'user')}"
        )
        # The minter's membership must be the one it minted the token in: one that began
        # later (removed, then added again) does not bring the token back. Tokens from
        # before that was recorded: a membership that began before the token did.
        minted_in = f"t.{_column(ClientToken, 'minted_in')}"
        began, minted = _column(Membership, "created_at"), _column(ClientToken, "created_at")
        since = (
            f" AND (m.{q('id')} = {minted_in} OR ({minted_in} IS NULL AND m.{began} <= t.{minted}))"
        )
        flags = [member(since), "FALSE", origin]
    else:
        token = _Table(PersonalAccessToken, "t")
        tables = [token, user, project]
        joins = (
            f"JOIN {_table(User)} u ON u.id = t.{_column(PersonalAccessToken, 'user')} "
            f"LEFT JOIN {_table(Project)} p ON p.{_column(Project, 'slug')} = %(project)s"
        )
        flags = [member(), restricted_elsewhere("t"), "FALSE"]
    if resource is not None:
        row = _Table(resource.model, "x")
        tables.append(row)
        joins += (
            f" LEFT JOIN {_table(resource.model)} x ON x.{_column(resource.model, 'project')} "
            f"= p.{q('id')} AND x.{_column(resource.model, resource.field)} = %(resource)s"
        )
    select = ", ".join([*(t.columns() for t in tables), *flags])
    where = f"t.{_column(token.model, 'token_hash')} = %(hash)s"
    if kind is TokenKind.API_KEY:
        # A rolled key answers to its previous secret too (each column has its own index).
        where += f" OR t.{_column(ApiKey, 'previous_token_hash')} = %(hash)s"
    sql = (
        f"SELECT {select} FROM {_table(token.model)} t {joins} "  # noqa: S608 - names only
        f"WHERE {where}"
    )
    return _Statement(sql, tables, len(flags))


# -- Running them -----------------------------------------------------------------------------


def lookup(
    *,
    kind: TokenKind,
    digest: str,
    project_slug: str = "",
    origin: str = "",
    resource: Resource | None = None,
    resource_value: str | None = None,
) -> Found | None:
    """The token with keyed hash `digest` and what comes with it; None if there is none."""
    statement = _statement(kind, resource)
    params = {
        "hash": digest,
        "project": project_slug or None,
        "origin": origin or None,
        "resource": resource_value,
    }
    row = fetch_one(statement.sql, params)
    if row is None:
        return None
    chars = sum(len(value) for value in row if isinstance(value, str))
    built: list[Any] = []
    at = 0
    for table in statement.tables:
        built.append(table.build(row[at : at + len(table)]))
        at += len(table)
    is_member, restricted_elsewhere, origin_allowed = (bool(v) for v in row[at:])
    found_resource = built.pop() if resource is not None else None
    if kind is TokenKind.API_KEY:
        api_key, project = built
        previous = api_key.token_hash != digest
        return Found(
            kind,
            project,
            api_key=api_key,
            resource=found_resource,
            previous_secret=previous,
            chars=chars,
        )
    if kind is TokenKind.CLIENT_TOKEN:
        client_token, project, api_key, pat, user = built
        if pat is not None:
            pat.user = user  # the ORM's select_related, by hand
        if client_token is not None:
            client_token.project, client_token.api_key = project, api_key
            client_token.personal_token = pat
        return Found(
            kind,
            project,
            api_key=api_key,
            client_token=client_token,
            personal_token=pat,
            user=user,
            is_member=is_member,
            origin_allowed=origin_allowed,
            resource=found_resource,
            chars=chars,
        )
    pat, user, project = built
    pat.user = user
    return Found(
        kind,
        project,
        personal_token=pat,
        user=user,
        is_member=is_member,
        restricted_elsewhere=restricted_elsewhere,
        resource=found_resource,
        chars=chars,
    )
