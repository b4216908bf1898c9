"""The three servers of `make bench`, their processes, and the CPU they use.

Each server runs in a process group of its own (so it can be stopped whole, and its CPU
read from /proc whole), with its output in a file:

  ours   `make serve`: gunicorn reminix_dashboard.wsgi from the repository root, exactly as
         a deploy runs it (so ./gunicorn.conf.py and its worker_exit flush apply);
  floor  gunicorn floor.wsgi from benchmarks/, the .venv's Python;
  peer   gunicorn peer.wsgi from benchmarks/, the .venv-bench's Python.

The floor and the peer get the same gunicorn options as `make serve` (sync workers, the
same count, the same access log to the same kind of file), so the three differ by the
application alone. Started from benchmarks/, which has no gunicorn.conf.py, they do not
pick up the dashboard's hooks.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
START_TIMEOUT = 120.0
STOP_TIMEOUT = 45.0
# `make serve`'s access log format, so the floor and the peer log as much per request.
ACCESS_LOG_FORMAT = '%(h)s "%(m)s %(U)s" %(s)s %(M)sms'


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU of one process so far, from /proc (None once it has gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_group(pgid: int) -> list[int]:
    """Live members of a process group (a zombie has finished and is left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def cpu_snapshot(pids: list[int]) -> dict[int, float]:
    return {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots (a process that started in between counts whole)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass
class Response:
    """One answer of request(): status, body and how long it took; the smoke tests, the lag
    probe and the usage-page timings read it."""

    status: int
    body: bytes
    seconds: float


def request(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One HTTP request on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        started = time.perf_counter()
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        data = answer.read()
        return Response(answer.status, data, time.perf_counter() - started)
    finally:
        connection.close()


class Server:
    """A command serving HTTP on `port`, in a process group of its own."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        port: int,
        log_path: Path,
        database: str | None,
        shared_pids: list[int] | None = None,
    ) -> None:
        self.name = name
        # Services this server alone uses during its rounds (ours' Redis): their CPU is its.
        self.shared_pids = shared_pids or []
        self.command = command
        self.cwd = cwd
        self.env = env
        self.port = port
        self.log_path = log_path
        self.database = database  # whose PostgreSQL backends count as this server's CPU
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, ready_path: str) -> None:
        """Start, and return once a worker answers `ready_path` (any HTTP status)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                request(self.port, "GET", ready_path, timeout=2)
                return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} did not answer in {START_TIMEOUT:.0f} s")

    def pids(self) -> list[int]:
        return [*process_group(self.process.pid), *self.shared_pids] if self.process else []

    def stop(self) -> None:
        """SIGTERM to the group (gunicorn stops gracefully, workers flush), then SIGKILL."""
        if self.process is None:
            return
        process, self.process = self.process, None
        pgid = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while process_group(pgid) and time.monotonic() < deadline:
            process.poll()  # reap the leader as soon as it exits
            time.sleep(0.2)
        if process_group(pgid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def redis_pids() -> list[int]:
    """The Redis server's process, whose CPU ours' calls cost when it runs with REDIS_URL."""
    found = subprocess.run(["pgrep", "-x", "redis-server"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def ours(env: dict[str, str], workers: int, log_path: Path, database: str) -> Server:
    """`make serve`, the way the README tells a deploy to run the dashboard: with REDIS_URL
    that is gunicorn and `manage.py ingest_usage`, in one process group."""
    port = free_port()
    make = shutil.which("make") or "make"
    return Server(
        "ours (make serve)",
        [make, "--no-print-directory", "-s", "serve"],
        cwd=ROOT,
        env={**env, "PORT": str(port), "WEB_CONCURRENCY": str(workers)},
        port=port,
        log_path=log_path,
        database=database,
        shared_pids=redis_pids() if env.get("REDIS_URL") else [],
    )


def gunicorn(
    name: str,
    python: Path,
    application: str,
    *,
    env: dict[str, str],
    workers: int,
    log_path: Path,
    database: str | None,
) -> Server:
    """gunicorn with `make serve`'s options, from benchmarks/ (no gunicorn.conf.py there)."""
    port = free_port()
    command = [
        str(python),
        "-m",
        "gunicorn",
        application,
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--access-logfile",
        "-",
        "--access-logformat",
        ACCESS_LOG_FORMAT,
        # Another gunicorn on this machine would share the default control socket path.
        "--no-control-socket",
    ]
    return Server(
        name,
        command,
        cwd=BENCH_DIR,
        env=env,
        port=port,
        log_path=log_path,
        database=database,
    )
