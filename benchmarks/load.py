"""Load for `make bench`: wrk when it is installed, otherwise this file's own generator.

Either way the load comes from a second process on loopback, and the result is the same
LoadResult: requests, seconds, non-2xx answers (and of those, 429s: refusals by a rate
limit), socket errors, p50 and p99 latency.

Run on its own, this file is the Python generator (asyncio, one connection per
concurrent client, HTTP/1.1 keep-alive when the server allows it, a new connection when
it closes, as gunicorn's sync workers do after every response):

    BENCH_AUTHORIZATION="Bearer reminix_sk_…" python benchmarks/load.py \
        --url http://127.0.0.1:8000/v1/agents/my-agent/invoke --connections 16 --duration 10

It stops by itself after --duration seconds or --max-requests requests, whichever is first,
and prints one JSON line. The key travels in the environment, not in the process list.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "post.lua"
DEFAULT_BODY = '{"prompt":"hello"}'
REQUEST_TIMEOUT = 10.0
MAX_REQUESTS = 5_000_000


@dataclass(frozen=True)
class LoadResult:
    """What one timed run of load produced."""

    scenario: str
    tool: str
    requests: int
    seconds: float
    non2xx: int
    limited: int  # 429 answers, a subset of non2xx
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load_tool(force_python: bool = False) -> str:
    """ "wrk" when it is on PATH (and not overridden), else "python"."""
    return "wrk" if not force_python and shutil.which("wrk") else "python"


def drive(
    scenario: str,
    url: str,
    *,
    authorization: str = "",
    body: str = DEFAULT_BODY,
    connections: int,
    threads: int = 2,
    duration: float,
    tool: str,
) -> LoadResult:
    """POST `body` at `url` for `duration` seconds from a second process.

    `threads` is wrk's; the Python generator is one asyncio loop whatever it says.
    """
    env = {**os.environ, "BENCH_AUTHORIZATION": authorization, "BENCH_BODY": body}
    seconds = max(1, round(duration))
    if tool == "wrk":
        command = [
            "wrk",
            "--threads",
            str(max(1, min(threads, connections))),
            "--connections",
            str(connections),
            "--duration",
            f"{seconds}s",
            "--timeout",
            f"{int(REQUEST_TIMEOUT)}s",
            "--script",
            str(WRK_SCRIPT),
            url,
        ]
        marker = "WRK_RESULT "
    else:
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--url",
            url,
            "--connections",
            str(connections),
            "--duration",
            str(seconds),
        ]
        marker = "LOAD_RESULT "
    finished = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    line = next((x for x in finished.stdout.splitlines() if x.startswith(marker)), None)
    if finished.returncode != 0 or line is None:
        raise RuntimeError(
            f"{tool} failed (exit {finished.returncode}):\n{finished.stdout}\n{finished.stderr}"
        )
    figures = json.loads(line[len(marker) :])
    return LoadResult(
        scenario=scenario,
        tool=tool,
        requests=figures["requests"],
        seconds=figures["duration_us"] / 1_000_000,
        non2xx=figures["non2xx"],
        limited=figures.get("limited", 0),
        socket_errors=figures["socket_errors"],
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
    )


# The Python generator.


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


class Tally:
    """The Python generator's running counts, shared by all its clients (one event loop, so no
    lock): what generate() turns into the same figures wrk's script prints."""

    def __init__(self) -> None:
        self.latencies_us: list[float] = []
        self.non2xx = 0
        self.limited = 0
        self.socket_errors = 0
        self.requests = 0


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the connection stays open."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, status = lines[0].split(" ", 2)[:2]
    headers = {}
    for raw in lines[1:]:
        name, _, value = raw.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip().lower()
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.read()  # the body runs to the end of the connection
        return int(status), False
    keep = headers.get("connection") != "close" and version == "HTTP/1.1"
    return int(status), keep


async def _client(
    host: str, port: int, request: bytes, deadline: float, max_requests: int, tally: Tally
) -> None:
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while time.monotonic() < deadline and tally.requests < max_requests:
        try:
            if connection is None:
                connection = await asyncio.wait_for(
                    asyncio.open_connection(host, port), REQUEST_TIMEOUT
                )
            reader, writer = connection
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status, keep = await asyncio.wait_for(_read_response(reader), REQUEST_TIMEOUT)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            tally.socket_errors += 1
            if connection is not None:
                connection[1].close()
            connection = None
            await asyncio.sleep(0.01)
            continue
        if time.monotonic() >= deadline:
            break  # answered after the bell, as wrk does not count it either
        tally.latencies_us.append((time.perf_counter() - started) * 1_000_000)
        tally.requests += 1
        if not 200 <= status <= 299:
            tally.non2xx += 1
            tally.limited += status == 429
        if not keep:
            writer.close()
            connection = None
    if connection is not None:
        connection[1].close()


async def generate(
    url: str, *, authorization: str, body: str, connections: int, duration: float, max_requests: int
) -> dict[str, int]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    payload = body.encode()
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {parts.netloc}",
        "User-Agent: reminix-bench/python",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: keep-alive",
    ]
    if authorization:
        head.append(f"Authorization: {authorization}")
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    tally = Tally()
    started = time.monotonic()
    deadline = started + duration
    await asyncio.gather(
        *(_client(host, port, request, deadline, max_requests, tally) for _ in range(connections))
    )
    elapsed = time.monotonic() - started
    latencies = sorted(tally.latencies_us)
    return {
        "requests": tally.requests,
        "duration_us": int(min(elapsed, duration) * 1_000_000),
        "non2xx": tally.non2xx,
        "limited": tally.limited,
        "socket_errors": tally.socket_errors,
        "p50_us": int(percentile(latencies, 50)),
        "p99_us": int(percentile(latencies, 99)),
        "max_us": int(latencies[-1]) if latencies else 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (at most 600)")
    parser.add_argument("--max-requests", type=int, default=MAX_REQUESTS)
    args = parser.parse_args()
    figures = asyncio.run(
        generate(
            args.url,
            authorization=os.environ.get("BENCH_AUTHORIZATION", ""),
            body=os.environ.get("BENCH_BODY") or DEFAULT_BODY,
            connections=max(1, args.connections),
            duration=min(max(args.duration, 0.1), 600.0),
            max_requests=args.max_requests,
        )
    )
    print("LOAD_RESULT " + json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
