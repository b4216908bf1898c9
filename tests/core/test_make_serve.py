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
from contextlib import contextmanager
from pathlib import Path
from typing import IO

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


def _serve(bin_dir: Path) -> list[str]:
    """make serve with the Python and gunicorn of `bin_dir`; -o: never install anything."""
    return [
        "make",
        "--no-print-directory",
        f"BIN={bin_dir}",
        "-o",
        f"{bin_dir}/.installed",
        "serve",
    ]


@contextmanager
def make_serve(
    deployed: Deployment, tmp_path: Path, output: IO[bytes] | int = subprocess.DEVNULL
) -> Iterator[tuple[subprocess.Popen[bytes], Server]]:
    """make serve as an orchestrator starts it (a session of its own, this suite's
    interpreter and gunicorn: BIN), and the server it answers as, once it answers; its
    output (stderr too) to `output`. On the way out, whatever is left of its processes is
    killed."""
    port = free_port()
    make = subprocess.Popen(
        _serve(BIN),
        cwd=ROOT,
        env={**deployed.env, "PORT": str(port)},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        server = Server(port, make, tmp_path / "unused")
        server.wait_until_up(timeout=120)
        yield make, server
    finally:
        if _alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
        make.wait()


def _outlived(make: subprocess.Popen[bytes]) -> bool:
    """Once make has ended (within a minute), whether any of its processes is still
    there 10 seconds on."""
    make.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _alive(make.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _alive(make.pid)


def test_sigterm_to_make_serve_alone_stops_every_process_and_loses_no_answered_call(
    deployed: Deployment, tmp_path: Path
):
    """Before, make passed the signal to its shell, whose trap stopped the ingest and the
    scheduler and left gunicorn serving on, parented to init: its calls then waited on a
    stream that nobody read, and the next start found the port taken."""
    with (
        (tmp_path / "serve.log").open("wb") as output,
        make_serve(deployed, tmp_path, output) as (make, server),
    ):
        answered = [server.invoke(deployed.token) for _ in range(5)]
        assert {answer.status for answer in answered} == {200}

        make.send_signal(signal.SIGTERM)
        left = _outlived(make)

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
    with make_serve(deployed, tmp_path) as (make, _):
        os.kill(_process_of(make.pid, command), signal.SIGKILL)
        left = _outlived(make)
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
        _serve(fake),
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
        _serve(fake),
        cwd=ROOT,
        env={**env, "PORT": "8123"},
        capture_output=True,
        text=True,
        timeout=25,
    )
    assert done.returncode != 0, done.stderr
    assert "status 0" in done.stderr
