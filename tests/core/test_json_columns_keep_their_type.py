"""Each JSON column our services write as an object or a list refuses, in the database,
any other top-level JSON (core/json_type.py): a row edited by hand or restored from
elsewhere with a number where a key's permissions belong, a list where an audit event's
metadata belongs, made the pages that read it answer 500. Written past the models, by
raw SQL, as such an edit is."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction

from accounts.models import Passkey
from agents.models import Agent, Execution
from alerts.models import AlertRules
from apikeys.models import ApiKey, ClientToken, PersonalAccessToken
from apikeys.services import client_token_create
from audit.models import AuditEvent
from webhooks.models import WebhookDelivery
from webhooks.services import webhook_create

OBJECT, ARRAY = {"kept": [1, "two"]}, ["read"]
# (model, column, a value of its type)
COLUMNS: list[tuple[type[models.Model], str, Any]] = [
    (Agent, "config", OBJECT),
    (Execution, "input", OBJECT),
    (AuditEvent, "metadata", OBJECT),
    (ApiKey, "permissions", ARRAY),
    (ApiKey, "allowed_networks", ARRAY),
    (ApiKey, "agent_names", ARRAY),
    (ApiKey, "agent_actions", ARRAY),
    (PersonalAccessToken, "permissions", ARRAY),
    (PersonalAccessToken, "allowed_networks", ARRAY),
    (PersonalAccessToken, "agent_names", ARRAY),
    (PersonalAccessToken, "agent_actions", ARRAY),
    (ClientToken, "agent_names", ARRAY),
    (ClientToken, "agent_actions", ARRAY),
    (ClientToken, "context", OBJECT),
    (ClientToken, "server_context", OBJECT),
    (Passkey, "transports", ARRAY),
    (AlertRules, "off", ARRAY),
    (WebhookDelivery, "payload", OBJECT),
]
SCALARS: list[Any] = ["read", 7, 1.5, True, False, None]


def _ids(column: tuple[type[models.Model], str, Any]) -> str:
    return f"{column[0].__name__}.{column[1]}"


@pytest.fixture
def rows(project, user, api_key) -> dict[type[models.Model], models.Model]:
    """One row of each model, as the services write it."""
    key, _ = api_key
    pat, _ = PersonalAccessToken.objects.mint(user=user, name="CLI", permissions=["read"])
    client, _ = client_token_create(project=project, context={}, api_key=key)
    endpoint, _ = webhook_create(
        project=project,
        url="https://hooks.example.com/reminix",
        format="generic",
        min_severity="low",
        created_by=user,
    )
    return {
        Agent: Agent.objects.create(project=project, name="support"),
        Execution: Execution.objects.create(
            project=project, agent_name="support", type="invoke", status="success"
        ),
        AuditEvent: AuditEvent.objects.create(action="api_key.created", project=project),
        ApiKey: key,
        PersonalAccessToken: pat,
        ClientToken: client,
        Passkey: Passkey.objects.create(
            user=user, credential_id="cred", public_key=b"k", user_handle=b"h", name="Phone"
        ),
        AlertRules: AlertRules.objects.create(project=project),
        WebhookDelivery: WebhookDelivery.objects.create(
            endpoint=endpoint, event_id="evt_1", event_type="webhook.test", payload={"id": 1}
        ),
    }


def _write(row: models.Model, column: str, value: Any) -> None:
    table, pk = row._meta.db_table, row._meta.pk.column  # type: ignore[union-attr]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {column} = %s WHERE {pk} = %s",  # noqa: S608
            [json.dumps(value), row.pk],
        )


@pytest.mark.parametrize("column", COLUMNS, ids=_ids)
def test_a_json_column_refuses_any_other_type_than_the_one_its_services_write(rows, column):
    model, name, right = column
    row = rows[model]
    before = getattr(model._default_manager.get(pk=row.pk), name)
    wrong = [*SCALARS, {} if isinstance(right, list) else [], OBJECT if right is ARRAY else ARRAY]
    for value in wrong:
        with pytest.raises(IntegrityError), transaction.atomic():
            _write(row, name, value)
    assert getattr(model._default_manager.get(pk=row.pk), name) == before
    _write(row, name, right)
    assert getattr(model._default_manager.get(pk=row.pk), name) == right


def test_a_row_of_the_wrong_type_is_refused_through_the_models_too(rows):
    """An update() (a shell, a script) is refused as raw SQL is."""
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.filter(pk=rows[ApiKey].pk).update(permissions="read,write,agents")
    with pytest.raises(IntegrityError), transaction.atomic():
        PersonalAccessToken.objects.filter(pk=rows[PersonalAccessToken].pk).update(
            allowed_networks=5
        )


def test_an_executions_output_is_any_json_the_agent_answered(rows):
    """The echo agent answers with what it was given: a prompt's string, an input's object,
    a chat's list. And a run not recorded yet has none."""
    execution = rows[Execution]
    for output in ["hello", {"a": 1}, [1], 3, None]:
        Execution.objects.filter(pk=execution.pk).update(output=output)
        assert Execution.objects.get(pk=execution.pk).output == output


def test_a_model_checked_before_saving_is_told_which_column_is_of_the_wrong_type(rows):
    """What a ModelForm or full_clean() asks: the constraint is checked in a query too."""
    key = rows[ApiKey]
    key.allowed_networks = "10.0.0.0/8"
    with pytest.raises(ValidationError, match="allowed_networks must be a JSON array"):
        key.validate_constraints()
    key.allowed_networks = ["10.0.0.0/8"]
    key.validate_constraints()
