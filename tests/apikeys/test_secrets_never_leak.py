"""A key is shown once, in the response that creates it, and never again anywhere:
not in a log line, the usage log, the audit trail, the session, the cache or a later page."""

from __future__ import annotations

import logging
import pickle
import re
from collections.abc import Iterator

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import connection
from django.test import Client
from django.urls import reverse

import agents.runtime
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke
from audit.models import AuditEvent
from usage.models import UsageRecord

TOKEN = re.compile(r"reminix_sk_[0-9A-Za-z]{36}")
INVOKE = "/v1/agents/my-agent/invoke"


@pytest.fixture
def every_log_line(caplog) -> Iterator[pytest.LogCaptureFixture]:
    """caplog at DEBUG on every logger, those that do not propagate included, and with the
    SQL of every query logged (django.db.backends), so a token that reached the database
    or any logger would be seen."""
    loggers = [logging.getLogger()] + [
        logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
    ]
    saved = [(lg, lg.level, lg.disabled) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.disabled = False
        if not lg.propagate and caplog.handler not in lg.handlers:
            lg.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    forced = connection.force_debug_cursor
    connection.force_debug_cursor = True
    try:
        yield caplog
    finally:
        connection.force_debug_cursor = forced
        for lg, level, disabled in saved:
            lg.setLevel(level)
            lg.disabled = disabled
            if caplog.handler in lg.handlers:
                lg.removeHandler(caplog.handler)


def create_through_the_dashboard(client: Client, project) -> tuple[str, ApiKey]:
    url = reverse("apikeys:api_key_create", args=[project.slug])
    data = {"name": "Production", "access": "full", "expiry": "never", "form_id": "f-1"}
    response = client.post(url, data)
    assert response.status_code == 201
    # The creation response is the one place the key appears, and nothing may keep it.
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control
    tokens = set(TOKEN.findall(response.content.decode()))
    assert len(tokens) == 1
    return tokens.pop(), ApiKey.objects.get(project=project, name="Production")


def use_it_every_way(client: Client, token: str, key: ApiKey, user, monkeypatch) -> None:
    """Successful, refused and failing calls, so every logging path runs with the key."""
    auth = {"Authorization": f"Bearer {token}"}
    client.post(INVOKE, {"prompt": "hi"}, content_type="application/json", headers=auth)
    client.post(INVOKE, "{not json", content_type="application/json", headers=auth)
    client.get("/v1/agents/nobody", headers=auth)
    client.get("/v1/nowhere", headers=auth)
    client.get(INVOKE, headers=auth)  # 405
    client.get(f"/v1/agents?api_key={token}", headers=auth)  # token in the URL
    client.get("/v1/agents", headers={"Authorization": f"Bearer {token[:-1]}x"})  # checksum
    with monkeypatch.context() as patched:

        def explode(payload):
            raise RuntimeError(f"failed with {payload}")

        patched.setattr(agents.runtime, "_echo_invoke", explode)
        response = client.post(
            INVOKE, {"prompt": "boom"}, content_type="application/json", headers=auth
        )
        assert response.status_code == 500
    api_key_revoke(api_key=key, by=user)
    client.post(INVOKE, {"prompt": "hi"}, content_type="application/json", headers=auth)


def test_the_key_is_never_logged_stored_or_shown_after_its_creation(
    signed_in, project, user, every_log_line, capfd, monkeypatch
):
    token, key = create_through_the_dashboard(signed_in, project)
    use_it_every_way(Client(), token, key, user, monkeypatch)

    # Pages after the creation response: the list, the key's usage, the project's usage,
    # the overview, and the forms that name the key.
    pages = [
        reverse("apikeys:api_key_list", args=[project.slug]),
        reverse("apikeys:api_key_create", args=[project.slug]),
        reverse("usage:api_key_usage", args=[project.slug, key.pk]),
        reverse("apikeys:api_key_rename", args=[project.slug, key.pk]),
        reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]),
        reverse("usage:project_usage", args=[project.slug]),
        reverse("overview:project_overview", args=[project.slug]),
    ]
    for page in pages:
        for headers in ({}, {"HX-Request": "true"}):
            response = signed_in.get(page, headers=headers)
            assert response.status_code == 200, (page, response.status_code)
            text = response.content.decode()
            assert token not in text, page
            assert token[len("reminix_sk_") :] not in text, page
    # The hint is what the pages may show instead.
    assert key.hint in signed_in.get(pages[0]).content.decode()

    # Neither the key nor its random part reached a log record or the console.
    secret_part = token[len("reminix_sk_") : -6]
    assert every_log_line.records, "the fixture should have captured something"
    assert any("INSERT" in r.getMessage() for r in every_log_line.records)  # SQL was logged
    logged = "\n".join(
        r.getMessage() + (logging.Formatter().formatException(r.exc_info) if r.exc_info else "")
        for r in every_log_line.records
    )
    assert secret_part not in logged
    assert secret_part not in every_log_line.text
    out, err = capfd.readouterr()
    assert secret_part not in out and secret_part not in err

    # Nor any row the calls wrote, nor the session, nor the cache.
    for record in UsageRecord.objects.all():
        for field in UsageRecord._meta.concrete_fields:
            value = str(getattr(record, field.attname))
            assert secret_part not in value, field.name
            assert "Bearer" not in value, field.name
    assert UsageRecord.objects.filter(api_key=key).count() >= 7
    for event in AuditEvent.objects.all():
        for field in AuditEvent._meta.concrete_fields:
            assert secret_part not in str(getattr(event, field.attname)), field.name
    for session in Session.objects.all():
        assert secret_part not in str(session.get_decoded())
        assert secret_part not in session.session_data
    cache = caches["default"]
    stored = getattr(cache, "_cache", {})
    for value in stored.values():
        assert secret_part.encode() not in (
            value if isinstance(value, bytes) else pickle.dumps(value)
        )


def test_the_same_form_posted_again_does_not_show_the_key_again(signed_in, project):
    token, _ = create_through_the_dashboard(signed_in, project)
    url = reverse("apikeys:api_key_create", args=[project.slug])
    again = signed_in.post(
        url, {"name": "Production", "access": "full", "expiry": "never", "form_id": "f-1"}
    )
    assert token not in again.content.decode()
    assert not TOKEN.search(again.content.decode())
    followed = signed_in.get(again["Location"]) if again.status_code == 302 else again
    assert token not in followed.content.decode()
    assert ApiKey.objects.filter(project=project).count() == 1


def test_a_token_sent_as_the_forms_id_is_neither_kept_in_the_session_nor_shown(
    signed_in, project, make_key
):
    """The create forms' hidden form_id (what stops a form sent twice making two keys) was
    taken as sent up to 64 characters: a token there (a tampered form, a script) went into
    the session's list of forms used and back into the page's hidden input."""
    _, pasted = make_key(project, name="Pasted")
    url = reverse("apikeys:api_key_create", args=[project.slug])
    for name in ("Made", ""):  # a key made, and a form refused beside its field
        answer = signed_in.post(
            url, {"name": name, "access": "full", "expiry": "never", "form_id": pasted}
        )
        assert pasted not in answer.content.decode()
        session = Session.objects.get(session_key=signed_in.session.session_key)
        assert pasted not in str(session.get_decoded())


def test_a_bearer_header_is_never_written_to_the_usage_log(api, api_key):
    token = api_key[1]
    # Even where a client puts it somewhere odd, like the user agent, the stored row must
    # not be the Authorization header.
    api.post(INVOKE, {"prompt": "hi"})
    api.post(INVOKE, {}, headers={"User-Agent": f"my-app/1.0 ({token})"})
    for record in UsageRecord.objects.all():
        values = [str(getattr(record, f.attname)) for f in UsageRecord._meta.concrete_fields]
        assert not any(token in v or "Bearer" in v for v in values), values


def test_the_command_line_prints_the_key_only_on_stdout(project, capfd, every_log_line):
    from django.core.management import call_command

    call_command("createapikey", project=project.slug, name="CI")
    out, err = capfd.readouterr()
    token = out.strip()
    assert TOKEN.fullmatch(token)
    assert token not in err
    assert token[len("reminix_sk_") : -6] not in every_log_line.text


def test_a_key_pasted_into_the_path_is_not_kept_in_the_usage_log(api, api_key):
    token = api_key[1]
    for path in (f"/v1/agents/{token}/invoke", f"/v1/{token}", f"/v1/agents/{token}"):
        api.send("POST" if path.endswith("invoke") else "GET", path, {"prompt": "x"})
    paths = list(UsageRecord.objects.values_list("path", flat=True))
    assert len(paths) == 3
    assert not any(token[11:] in p for p in paths), paths
    assert "/v1/agents/reminix_sk_[redacted]/invoke" in paths
