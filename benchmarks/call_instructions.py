"""CPU instructions a worker spends on one authenticated invoke, counted by callgrind.

Wall-clock figures move with whatever else the machine runs; instruction counts do not.
This runs the WSGI application gunicorn serves (reminix_dashboard.wsgi), in process,
with the bench's settings (DEBUG off, REDIS_URL, CONN_MAX_AGE; benchmarks/run.py) on a
database of your own, and calls POST /v1/agents/my-agent/invoke with a key N times under
valgrind --tool=callgrind, for two N; the difference over the difference of N is one
call's count, without Django's start.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/mine_db \\
    REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python benchmarks/call_instructions.py [--calls 200 1200]

The database is migrated and given an owner, a project and a key the first time (the
key is kept in benchmarks/.call_instructions_key, outside git).
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY_FILE = ROOT / "benchmarks" / ".call_instructions_key"
PATH = "/v1/agents/my-agent/invoke"
BODY = b'{"prompt":"hello"}'


def environment() -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "reminix_dashboard.settings.base",
        "DEBUG": "false",
        "SECRET_KEY": "call-instructions-" + "x" * 50,
        "TOKEN_HASH_KEY": "call-instructions-" + "y" * 32,
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": os.environ["REDIS_URL"],
        "SECURE_SSL_REDIRECT": "false",
        "USAGE_FLUSH_SECONDS": "0.5",
        "CONN_MAX_AGE": "600",
        "API_RATE_LIMIT_PER_MINUTE": str(10**9),
        "EMAIL_URL": "dummymail://",
    }


def prepare() -> str:
    """The key the calls send, made (with its owner and project) if there is none yet."""
    if KEY_FILE.exists():
        return KEY_FILE.read_text().strip()
    from django.core.management import call_command

    def manage(*args: str) -> str:
        out = io.StringIO()
        call_command(*args, stdout=out, stderr=io.StringIO())
        return out.getvalue().strip()

    call_command("migrate", verbosity=0, interactive=False)
    os.environ["DJANGO_SUPERUSER_PASSWORD"] = "call-instructions-password"
    manage("createsuperuser", "--noinput", "--email", "instructions@example.com")
    slug = manage("createproject", "--owner", "instructions@example.com", "Instructions")
    key = manage("createapikey", "--project", slug, "--name", "instructions")
    KEY_FILE.write_text(key)
    return key


def calls(n: int) -> None:
    """N invokes through the application, in this process."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    os.environ.update(environment())
    import django

    django.setup()
    key = prepare()
    import api.callers
    from reminix_dashboard.wsgi import application

    # A caller's copy lives CACHE_SECONDS of wall time: under valgrind, tens of times
    # slower on a machine others share, that made a database lookup every few hundred
    # calls, as often as the load made it. At the bench's rates a lookup every 2 s is
    # nothing per call: here the copy is always used, and the count does not move.
    api.callers.CACHE_SECONDS = 10**9

    statuses: dict[str, int] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        statuses[status] = statuses.get(status, 0) + 1

    for _ in range(n):
        environ = {
            "REQUEST_METHOD": "POST",
            "PATH_INFO": PATH,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000",
            "HTTP_HOST": "127.0.0.1:8000",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(BODY)),
            "HTTP_USER_AGENT": "reminix-bench/wrk",
            "HTTP_AUTHORIZATION": f"Bearer {key}",
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(BODY),
            "wsgi.errors": sys.stderr,
        }
        answer = application(environ, start_response)
        b"".join(answer)
        answer.close()
    if set(statuses) != {"200 OK"}:
        sys.exit(f"not every call succeeded: {statuses}")


def counted(n: int) -> int:
    """Instructions of a process making N calls."""
    with tempfile.TemporaryDirectory() as work:
        out = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={work}/callgrind.out",
                sys.executable,
                __file__,
                "--run",
                str(n),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},  # the same dict layouts each run
        )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        sys.exit(out.stderr)
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, nargs=2, default=[200, 1200])
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # (under valgrind)
    args = parser.parse_args()
    if args.run is not None:
        calls(args.run)
        return
    calls(1)  # prepared outside valgrind
    low, high = sorted(args.calls)
    low_count, high_count = counted(low), counted(high)
    print(f"{(high_count - low_count) / (high - low):,.0f} instructions per call")


if __name__ == "__main__":
    main()
