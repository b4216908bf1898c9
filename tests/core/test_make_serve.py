"""`make serve` as a deployment runs it: one process tree (make, its shell, gunicorn, the
ingest and the scheduler) that an orchestrator stops by signalling the process it started,
make, and nothing else (Kubernetes and `docker stop` signal PID 1 alone)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import (
    ROOT,
    Deployment,
    Prepared,
    Server,
    deployment,
    free_port,
    require_redis,
)

BIN = Path(sys.executable).parent


@pytest.fixture
def deployed(tmp_path: Path, prepared_deployment: Prepared) -> Iterator[Deployment]:
    require_redis()
    with deployment(tmp_path, prepared_deployment) as created:
        yield created


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_to_make_serve_alone_stops_every_process_and_loses_no_answered_call(
    deployed: Deployment, tmp_path: Path
):
    """Before, make passed the signal to its shell, whose trap stopped the ingest and the
    scheduler and left gunicorn serving on, parented to init: its calls then waited on a
    stream that nobody read, and the next start found the port taken."""
    port = free_port()
    output = (tmp_path / "serve.log").open("wb")
    make = subprocess.Popen(
        # BIN: this suite's interpreter and its gunicorn; -o: never install anything.
        ["make", "--no-print-directory", f"BIN={BIN}", "-o", f"{BIN}/.installed", "serve"],
        cwd=ROOT,
        env={**deployed.env, "PORT": str(port)},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        server = Server(port, make, tmp_path / "unused")
        server.wait_until_up(timeout=120)
        answered = [server.invoke(deployed.token) for _ in range(5)]
        assert {answer.status for answer in answered} == {200}

        make.send_signal(signal.SIGTERM)
        make.wait(timeout=60)
        deadline = time.monotonic() + 10
        while _alive(make.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _alive(make.pid)
    finally:
        if _alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait()
        output.close()

    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert not left, f"processes of make serve outlived its SIGTERM:\n{log[-3000:]}"
    deployed.manage("ingest_usage", "--once")
    assert deployed.usage_rows() >= len(answered)


def _process_of(group: int, command: str) -> int:
    """The pid of the `manage.py <command>` of `group` (not the recipe's shell, whose own
    command line names it too)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")
            if os.getpgid(int(entry.name)) == group and argv[1:3] == ["manage.py", command]:
                return int(entry.name)
        except (OSError, ProcessLookupError):
            continue
    raise AssertionError(f"no manage.py {command} among make serve's processes")


@pytest.mark.parametrize("command", ["ingest_usage", "run_scheduler"])
def test_make_serve_stops_whole_when_its_ingest_or_scheduler_dies(
    deployed: Deployment, tmp_path: Path, command: str
):
    """The ingest or the scheduler killed outright (the kernel's OOM killer, a crash) left
    gunicorn serving alone, healthy to every probe: no call's usage or execution was
    written any more, so detection saw none of them (a leaked key's use included), or no
    job ever ran again. make serve now stops the rest and fails, as when gunicorn stops,
    so that whatever started it starts it again."""
    port = free_port()
    make = subprocess.Popen(
        ["make", "--no-print-directory", f"BIN={BIN}", "-o", f"{BIN}/.installed", "serve"],
        cwd=ROOT,
        env={**deployed.env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        Server(port, make, tmp_path / "unused").wait_until_up(timeout=120)
        os.kill(_process_of(make.pid, command), signal.SIGKILL)
        make.wait(timeout=60)
        deadline = time.monotonic() + 10
        while _alive(make.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _alive(make.pid)
    finally:
        if _alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait()
    assert make.returncode != 0
    assert not left


@pytest.mark.parametrize(
    ("host", "bind"),
    [
        ("0.0.0.0", "0.0.0.0:8123"),
        ("::", "[::]:8123"),
        ("[::1]", "[::1]:8123"),
        # Set but empty (BIND_HOST= in an env file) is not set: gunicorn read '' as every
        # interface.
        ("", "127.0.0.1:8123"),
    ],
)
def test_make_serve_binds_an_ipv6_host_as_a_bare_gunicorn_does(tmp_path: Path, host, bind):
    """gunicorn reads host:port from its last colon: make serve passed BIND_HOST=:: as
    '--bind :::8123', which gunicorn refused ('' is not a valid port number), while a bare
    gunicorn (gunicorn.conf.py) brackets it. Run with stand-ins for Python and gunicorn
    that say what they were given."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\nexit 0\n")
    (fake / "gunicorn").write_text('#!/bin/sh\nfor a in "$@"; do echo "arg: $a"; done\n')
    for stand_in in ("python", "gunicorn"):
        (fake / stand_in).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BIND_HOST", "PORT")}
    done = subprocess.run(
        ["make", "--no-print-directory", f"BIN={fake}", "-o", f"{fake}/.installed", "serve"],
        cwd=ROOT,
        env={**env, "BIND_HOST": host, "PORT": "8123", "SCHEDULER": "off"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    args = [
        line.removeprefix("arg: ") for line in done.stdout.splitlines() if line.startswith("arg: ")
    ]
    assert args[args.index("--bind") + 1] == bind


def test_make_serve_fails_when_one_of_its_processes_ends_on_its_own_with_status_0(
    tmp_path: Path,
):
    """gunicorn, the ingest and the scheduler each end with status 0 when signalled alone
    (a SIGTERM to gunicorn's master, an operator's kill of the ingest): make serve then
    stopped the rest and succeeded, so a supervisor that restarts what fails (docker's
    on-failure, systemd's Restart=on-failure) left the deployment down. Run with stand-ins:
    a gunicorn that ends at once with 0, a scheduler that would run on."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text(
        "#!/bin/bash\n[[ $2 == run_scheduler ]] && exec sleep 30\nexit 0\n"
    )
    (fake / "gunicorn").write_text("#!/bin/sh\nexit 0\n")
    for stand_in in ("python", "gunicorn"):
        (fake / stand_in).chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SCHEDULER")}
    done = subprocess.run(
        ["make", "--no-print-directory", f"BIN={fake}", "-o", f"{fake}/.installed", "serve"],
        cwd=ROOT,
        env={**env, "PORT": "8123"},
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert done.returncode != 0, done.stderr
    assert "status 0" in done.stderr
