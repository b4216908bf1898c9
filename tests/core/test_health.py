"""/healthz and /readyz, for a load balancer or an orchestrator: answered to anyone, on any
Host and over plain http (a probe comes from the balancer, to the instance's own address),
with no session, no token and no limit, and saying nothing of what is inside."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

# A balancer's probe: plain http, to the instance's address, which no ALLOWED_HOSTS names.
PROBE = {"HTTP_HOST": "10.0.0.7:8000"}


@pytest.fixture
def production(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["dashboard.example.com"]


def test_healthz_answers_a_probe_without_touching_the_database(production, db):
    with CaptureQueriesContext(connection) as queries:
        answer = Client().get("/healthz", **PROBE)
    assert answer.status_code == 200 and answer.content == b"ok\n"
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert answer["Cache-Control"] == "no-store"
    assert not answer.cookies and not queries.captured_queries


def test_readyz_answers_ok_while_the_database_answers(production, db):
    answer = Client().get("/readyz", **PROBE)
    assert answer.status_code == 200 and answer.content == b"ok\n"
    assert answer["Cache-Control"] == "no-store" and not answer.cookies


def test_readyz_is_503_while_the_database_is_out_of_reach_and_says_nothing_of_why(
    production, db, monkeypatch
):
    def unreachable(*args, **kwargs):
        raise OperationalError('connection to server at "db.internal" (10.1.2.3) failed')

    with monkeypatch.context() as patched:
        patched.setattr(connection, "cursor", unreachable)
        answer = Client().get("/readyz", **PROBE)
    assert answer.status_code == 503 and answer.content == b"unavailable\n"
    assert answer["Retry-After"] == "5" and answer["Cache-Control"] == "no-store"


def test_a_head_probe_is_answered_too(production, db):
    assert Client().head("/healthz", **PROBE).status_code == 200
    assert Client().head("/readyz", **PROBE).status_code == 200


def test_only_the_exact_paths_are_probes(production, db):
    """Anything else is the dashboard's, with its host check and https redirect."""
    assert Client().get("/healthz/", **PROBE).status_code == 400
    assert Client().get("/readyz", HTTP_HOST="dashboard.example.com", **{}).status_code == 200
    assert Client().post("/healthz", HTTP_HOST="dashboard.example.com").status_code == 301


def test_readyz_writes_no_error_to_the_log_while_the_database_is_out_of_reach(
    production, db, monkeypatch, caplog
):
    """A balancer probes every few seconds, and each 503 was an ERROR line 'Service
    Unavailable: /readyz' from Django's request log, one per probe for the outage's length,
    enough to page whoever watches errors for what the probe already reports."""

    def unreachable(*args, **kwargs):
        raise OperationalError("connection to server failed")

    with monkeypatch.context() as patched, caplog.at_level(logging.INFO):
        patched.setattr(connection, "cursor", unreachable)
        assert Client().get("/readyz", **PROBE).status_code == 503
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
