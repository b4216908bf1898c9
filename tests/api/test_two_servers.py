"""Two server processes on one database and one Redis, driven over HTTP: a revocation made
through one holds on the other from the very next call; a rate limit holds across both;
a worker killed outright loses no answered call; the access log never holds a token.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from tests.servers import Deployment, Prepared, Server, deployment, require_redis


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, prepared_deployment: Prepared
) -> Iterator[Deployment]:
    """One database for the module's servers (a copy of the prepared one); each test
    makes its own key and its own servers."""
    require_redis()
    with deployment(tmp_path_factory.mktemp("servers"), prepared_deployment) as created:
        yield created
    assert connection  # (the suite's own database is not used here)


def test_a_key_revoked_through_one_server_is_refused_by_the_other_from_the_next_call(
    deployed: Deployment,
):
    from tests.servers import Browser

    token = deployed.new_key("revoked while busy")
    # Four threads answered from the workers' copies outrun the default limit of 1,200
    # calls a minute: this test is about revocation, so the limit stays out of its way.
    dashboard, api = deployed.serve(), deployed.serve(API_RATE_LIMIT_PER_MINUTE="1000000")
    deployed.ingest()
    assert api.invoke(token).status == 200  # the other server has its copy now

    calls: list = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            calls.append(api.invoke(token))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    person = Browser(dashboard)
    person.sign_in()
    keys_page = f"/projects/{deployed.slug}/settings/api-keys/"
    page = person.get(keys_page).body.decode()
    row = re.search(r"revoked while busy.*?/settings/api-keys/(\d+)/revoke/", page, flags=re.DOTALL)
    assert row
    revoke = f"{keys_page}{row.group(1)}/revoke/"
    answer = person.post_form(revoke, revoke, {})
    assert answer.status == 302
    revoked_at = answer.finished
    time.sleep(0.7)
    stop.set()
    for thread in threads:
        thread.join()

    before = [c for c in calls if c.finished < answer.started]
    after = [c for c in calls if c.started > revoked_at]
    assert before and after
    assert {c.status for c in before} == {200}
    assert {c.status for c in after} == {401}
    assert {c.json()["error"]["code"] for c in after} == {"expired_api_key"}


def test_a_rate_limit_holds_across_servers_and_their_workers(deployed: Deployment):
    token = deployed.new_key("limited")
    servers = [deployed.serve(API_RATE_LIMIT_PER_MINUTE="20") for _ in range(2)]
    while time.time() % 60 > 50:  # all 40 calls inside one clock minute
        time.sleep(1)
    statuses: list[int] = []
    start = threading.Barrier(40)

    def call(server: Server) -> None:
        start.wait()
        statuses.append(server.invoke(token).status)

    threads = [threading.Thread(target=call, args=(servers[n % 2],)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) == 20
    assert statuses.count(429) == 20


def test_a_worker_killed_outright_loses_no_answered_call(deployed: Deployment):
    deployed.stop_all()  # no ingest running: every answered call must wait in Redis
    # What earlier tests left on the stream, a key, and the rows so far: one process for
    # the three commands (each process is ~2 s of Django starting on a loaded machine).
    *_, token, before = deployed.manage(
        "shell",
        "-c",
        "from django.core.management import call_command\n"
        "from usage.models import UsageRecord\n"
        "call_command('ingest_usage', '--once')\n"
        f"call_command('createapikey', '--project', '{deployed.slug}', '--name', 'killed')\n"
        "print(UsageRecord.objects.count())",
    ).splitlines()
    server = deployed.serve(workers=2)
    answered = [server.invoke(token) for _ in range(60)]
    assert {a.status for a in answered} == {200}
    os.killpg(server.process.pid, signal.SIGKILL)  # master and workers: no exit hooks run
    server.process.wait()

    deployed.manage("ingest_usage", "--once")
    assert deployed.usage_rows() - int(before) == 60


def test_a_token_pasted_into_the_path_never_reaches_the_access_log(deployed: Deployment):
    server = deployed.serve(workers=1)
    token = deployed.new_key("pasted")
    server.request("GET", f"/v1/agents/{token}/invoke?x={token}")
    server.request("GET", f"/account/{token}/")
    deployed.stop_all()
    log = server.access_log.read_text()
    assert "reminix_sk_[redacted]" in log
    assert token not in log and token[11:] not in log
