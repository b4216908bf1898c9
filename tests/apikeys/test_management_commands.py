"""`createproject` and `createapikey`: scripted setup that ends in a working key."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import Membership, Project
from apikeys.models import ApiKey
from apikeys.tokens import TokenKind, token_hash, token_kind
from audit.models import AuditEvent
from tests.api.assertions import assert_error, assert_ok
from tests.conftest import Api


def run(command: str, *args: str, **options: object) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(command, *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def test_createproject_then_createapikey_give_a_slug_and_a_key_that_works(user):
    out, _ = run("createproject", "Billing Bot", owner="ADA@example.com")
    slug = out.strip()
    project = Project.objects.get(slug=slug)
    assert project.name == "Billing Bot"
    assert out == slug + "\n"  # only the slug, so `SLUG=$(…)` works
    assert Membership.objects.get(project=project, user=user).is_owner

    out, err = run("createapikey", project=slug, name="CI")
    token = out.strip()
    assert out == token + "\n"  # only the key on stdout
    assert token_kind(token) is TokenKind.API_KEY
    key = ApiKey.objects.get(project=project)
    assert (key.name, key.token_hash, key.created_by) == ("CI", token_hash(token), None)
    assert key.hint in err and token not in err
    assert set(key.permissions) == {"agents", "read", "write"}

    api = Api(Client(), token)
    assert assert_ok(api.get("/v1/projects/current")) == {
        "id": slug,
        "name": "Billing Bot",
        "slug": slug,
    }
    assert assert_ok(api.post("/v1/agents/my-agent/invoke", {"prompt": "hi"}))["output"] == "hi"
    assert AuditEvent.objects.filter(action="api_key.created", project=project).exists()


def test_createapikey_with_permissions_makes_a_restricted_key(project):
    out, _ = run("createapikey", project=project.slug, name="Reader", permissions="read")
    key = ApiKey.objects.get(name="Reader")
    assert key.permissions == ["read"]
    api = Api(Client(), out.strip())
    assert_ok(api.get("/v1/agents"))
    assert_error(
        api.post("/v1/agents/my-agent/invoke", {"prompt": "x"}), 403, "insufficient_permissions"
    )


def test_createapikey_accepts_spaces_and_any_order_in_permissions(project):
    run("createapikey", project=project.slug, name="Two", permissions=" write , agents ")
    assert ApiKey.objects.get(name="Two").permissions == ["agents", "write"]


def test_the_argv_form_works_as_in_the_readme(project):
    out, _ = run("createapikey", "--project", project.slug, "--name", "Deploy")
    assert token_kind(out.strip()) is TokenKind.API_KEY


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (("Billing",), {"owner": "nobody@example.com"}, "nobody@example.com"),
        (("   ",), {"owner": "ada@example.com"}, "name"),
        (("x" * 81,), {"owner": "ada@example.com"}, "80 characters"),
    ],
)
def test_createproject_refuses_with_a_clear_message(user, args, options, message):
    with pytest.raises(CommandError, match=message):
        run("createproject", *args, **options)
    assert Project.objects.count() == 1  # only the project sign-up made


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"project": "no-such-project", "name": "CI"}, "no-such-project"),
        ({"name": "CI", "permissions": "admin"}, "agents,read,write"),
        ({"name": "CI", "permissions": "read,delete"}, "agents,read,write"),
        ({"name": "CI", "permissions": ","}, "agents,read,write"),
        ({"name": "CI", "permissions": ""}, "agents,read,write"),
        ({"name": "   "}, "name"),
    ],
)
def test_createapikey_refuses_with_a_clear_message(project, options, message):
    options.setdefault("project", project.slug)
    out = StringIO()
    with pytest.raises(CommandError, match=message):
        call_command("createapikey", stdout=out, stderr=StringIO(), **options)
    assert out.getvalue() == ""
    assert not ApiKey.objects.exists()


def test_createapikey_names_the_unknown_permission(project):
    with pytest.raises(CommandError) as refused:
        run("createapikey", project=project.slug, name="CI", permissions="read,delete")
    assert "delete" in str(refused.value)


def test_createapikey_keeps_the_name_within_the_column(project):
    with pytest.raises(CommandError, match="100 characters"):
        run("createapikey", project=project.slug, name="x" * 101)
    assert not ApiKey.objects.exists()


def test_a_key_made_by_the_command_is_by_a_script_in_the_audit_log_as_in_the_list(project):
    from django.core.management import call_command

    from audit.models import AuditEvent

    call_command("createapikey", "--project", project.slug, "--name", "Deploy")
    event = AuditEvent.objects.get(action="api_key.created")
    assert event.actor_id is None and event.actor_email.startswith("a script")


def test_createproject_makes_no_project_for_a_deleted_account(user):
    from accounts.services import account_delete

    account_delete(user=user)
    kept_as = user.__class__.objects.get(pk=user.pk).email
    with pytest.raises(CommandError, match="No user"):
        run("createproject", "Ghost town", owner=kept_as)
    assert not Membership.objects.filter(user=user).exists()
