"""Timed load in alternating rounds, and what each round cost the server in CPU.

All servers of a comparison run at once, on different ports; only one is under load at a
time. Each round drives every server once, in the order A B C, then C B A, and so on, so a
drift in the machine's background load falls on all of them alike; and each round starts
once the machine is quiet (or after 15 s of waiting), so that a neighbour's burst, such as
a test run, is less likely to fall on one server's run only.

Besides the load tool's figures (requests, p50, p99, non-2xx), each run reads from /proc
the CPU that the server's processes and its PostgreSQL backends used during the run. A
neighbour on the machine that takes cores away cuts req/s roughly in proportion, while CPU
per call rises far less (shared caches and hyper-threads), so on a shared machine CPU per
call is the steadier figure.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from lag_probe import APPLICATION_NAME, LagProbe
from load import LoadResult, drive
from servers import Server, cpu_seconds, cpu_snapshot, cpu_used

CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def say(text: str = "") -> None:
    print(text, flush=True)


@dataclass(frozen=True)
class Target:
    """One server under load: what to POST where, with which key."""

    label: str
    server: Server
    path: str
    authorization: str = ""
    # Measures, while this target's timed runs load it, how long its answers take to
    # reach the execution log (ours only).
    probe: LagProbe | None = None


@dataclass(frozen=True)
class LoadOptions:
    """How each round loads a target, from run.py's options: wrk or the Python generator, its
    threads and connections, how long to run and warm up, and when to read the CPU after."""

    tool: str
    threads: int
    connections: int
    duration: float
    warmup: float
    # After the load stops, CPU is read this much later, so work a server finishes after
    # its last answer (ours writes its usage batch every 0.5 s) counts as its own.
    settle: float = 0.75


@dataclass(frozen=True)
class Run:
    """One timed round of one target: the load tool's figures, and the CPU the server and its
    database spent in it (and what the rest of the machine took meanwhile)."""

    result: LoadResult
    python_cpu: float  # the server's process group: arbiter, workers (and make, for ours)
    database_cpu: float  # the PostgreSQL backends of the server's database
    others: float  # share of the machine used by neither the server nor the load tool
    # python_cpu by the part of the server that spent it (see `part_of`)
    parts: dict[str, float] = field(default_factory=dict)


@dataclass
class Tally:
    """Every timed run of one target, and its warm-up (counted for the usage log only)."""

    runs: list[Run] = field(default_factory=list)
    warmups: list[LoadResult] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.result.requests for r in self.runs)

    @property
    def seconds(self) -> float:
        return sum(r.result.seconds for r in self.runs)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> tuple[float, float]:
        """Server CPU per call, in ms: (Python, PostgreSQL)."""
        n = max(self.requests, 1)
        return (
            1000 * sum(r.python_cpu for r in self.runs) / n,
            1000 * sum(r.database_cpu for r in self.runs) / n,
        )

    @property
    def cpu_ms_per_call(self) -> float:
        return sum(self.cpu_ms)

    @property
    def parts_ms(self) -> dict[str, float]:
        """Server CPU per call, in ms, by part: web workers, ingest, Redis, PostgreSQL…"""
        n = max(self.requests, 1)
        totals: dict[str, float] = {}
        for r in self.runs:
            for part, cpu in r.parts.items():
                totals[part] = totals.get(part, 0.0) + cpu
        totals["PostgreSQL"] = sum(r.database_cpu for r in self.runs)
        return {part: 1000 * cpu / n for part, cpu in totals.items()}

    def median(self, attribute: str) -> float:
        return statistics.median(getattr(r.result, attribute) for r in self.runs)

    @property
    def others(self) -> float:
        return statistics.median(r.others for r in self.runs)

    @property
    def non2xx(self) -> int:
        return sum(r.result.non2xx for r in self.runs)

    @property
    def socket_errors(self) -> int:
        return sum(r.result.socket_errors for r in self.runs)

    @property
    def answered(self) -> int:
        """Calls the load tool saw answered, warm-up included."""
        return self.requests + sum(w.requests for w in self.warmups)

    @property
    def limited(self) -> int:
        """429 answers (refusals by a rate limit), warm-up included."""
        return sum(r.result.limited for r in self.runs) + sum(w.limited for w in self.warmups)

    @property
    def seconds_with_warmup(self) -> float:
        return self.seconds + sum(w.seconds for w in self.warmups)


def backend_cpu(database: str | None) -> dict[int, float]:
    """CPU seconds so far of every PostgreSQL backend on `database` but this process's."""
    if database is None:
        return {}
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND application_name <> %s",
            [database, APPLICATION_NAME],
        )
        pids = [row[0] for row in cursor.fetchall()]
    return {pid: cpu for pid in pids if (cpu := cpu_seconds(pid)) is not None}


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) clock ticks of all cores since boot; steal counts as busy."""
    user, nice, system, idle, iowait, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def all_processes_cpu() -> dict[int, tuple[str, float]]:
    """Every process's (command name, CPU seconds so far), from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat.rsplit(")", 1)[1].split()
        found[int(entry.name)] = (name, (int(fields[11]) + int(fields[12])) / CLOCK_TICK)
    return found


def busiest(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> str:
    """The three processes that used the most CPU between two snapshots, for the record:
    a neighbour is named, so a noisy run can be told from a slow server."""
    used = sorted(
        ((cpu - before.get(pid, (name, 0.0))[1], name, pid) for pid, (name, cpu) in after.items()),
        reverse=True,
    )
    return ", ".join(
        f"{command_line(pid) or name} {100 * cpu:.0f}%" for cpu, name, pid in used[:3] if cpu > 0
    )


def command_line(pid: int, width: int = 40) -> str:
    try:
        words = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return ""
    line = " ".join(w.decode(errors="replace") for w in words if w)
    return line if len(line) <= width else line[: width - 1] + "…"


def wait_for_quiet(limit: float = 0.3, patience: float = 45.0) -> str:
    """Wait, at most `patience` seconds, until the machine's other work uses under `limit`
    of the cores (the servers are idle meanwhile); say what was found."""
    started = time.monotonic()
    while True:
        busy_before, total_before = machine_jiffies()
        processes_before = all_processes_cpu()
        time.sleep(1)
        busy_after, total_after = machine_jiffies()
        share = (busy_after - busy_before) / max(total_after - total_before, 1)
        waited = time.monotonic() - started
        if share < limit:
            return f"the machine is {100 * share:.0f}% busy before the load (waited {waited:.0f} s)"
        if waited >= patience:
            return (
                f"the machine is still {100 * share:.0f}% busy with other work after "
                f"{waited:.0f} s ({busiest(processes_before, all_processes_cpu())}); "
                "going ahead (see the others column)"
            )


def part_of(pid: int) -> str:
    """Which part of a server a process is, by its command line."""
    line = command_line(pid, width=10_000)
    if "redis-server" in line:
        return "Redis"
    if "ingest_usage" in line:
        return "ingest"
    if "gunicorn" in line:
        return "gunicorn"
    return "other"


def cpu_by_part(before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    parts: dict[str, float] = {}
    for pid, cpu in after.items():
        part = part_of(pid)
        parts[part] = parts.get(part, 0.0) + cpu - before.get(pid, 0.0)
    return parts


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def one_run(target: Target, seconds: float, load: LoadOptions, *, timed: bool = True) -> Run:
    """Load one target for `seconds`; read the CPU its server used meanwhile. A timed
    run of a target with a probe runs the probe too."""
    server = target.server
    own_before, db_before = cpu_snapshot(server.pids()), backend_cpu(server.database)
    busy_before, total_before = machine_jiffies()
    tool_before = children_cpu()
    probing = target.probe.running() if target.probe and timed else nullcontext()
    with probing:
        result = drive(
            target.label,
            server.base + target.path,
            authorization=target.authorization,
            connections=load.connections,
            threads=load.threads,
            duration=seconds,
            tool=load.tool,
        )
    tool_cpu = children_cpu() - tool_before
    time.sleep(load.settle)
    busy_after, total_after = machine_jiffies()
    own_after = cpu_snapshot(server.pids())
    python = cpu_used(own_before, own_after)
    database = cpu_used(db_before, backend_cpu(server.database))
    tick = os.sysconf("SC_CLK_TCK")
    elapsed = max((total_after - total_before) / tick, 1)
    others = ((busy_after - busy_before) / tick - python - database - tool_cpu) / elapsed
    return Run(result, python, database, max(others, 0.0), cpu_by_part(own_before, own_after))


HEADER = (
    f"  {'server':<37} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'non-2xx':>7} {'sock':>5} "
    "CPU ms/call = Python + PgSQL  others"
)


def row(label: str, tally_or_run: Tally | Run) -> str:
    """One line of the table: a single run, or a target's totals."""
    if isinstance(tally_or_run, Run):
        r = tally_or_run.result
        n = max(r.requests, 1)
        python, database = 1000 * tally_or_run.python_cpu / n, 1000 * tally_or_run.database_cpu / n
        figures = (r.rps, r.p50_ms, r.p99_ms, r.non2xx, r.socket_errors)
        others = f"{100 * tally_or_run.others:.0f}%"
    else:
        t = tally_or_run
        python, database = t.cpu_ms
        figures = (t.rps, t.median("p50_ms"), t.median("p99_ms"), t.non2xx, t.socket_errors)
        others = ""
    rps, p50, p99, non2xx, sock = figures
    return (
        f"  {label:<37} {rps:>7.1f} {p50:>7.1f} {p99:>7.1f} {non2xx:>7} {sock:>5} "
        f"{python + database:>5.2f} = {python:.2f} + {database:.2f}  {others:>9}"
    )


def alternate(targets: list[Target], rounds: int, load: LoadOptions) -> dict[str, Tally]:
    """Warm every target up, then `rounds` timed runs of each, alternating; print them."""
    tallies = {t.label: Tally() for t in targets}
    say("  " + wait_for_quiet())
    if load.warmup:
        for target in targets:
            warmup = one_run(target, load.warmup, load, timed=False)
            tallies[target.label].warmups.append(warmup.result)
    say(HEADER)
    for number in range(rounds):
        # A neighbour's burst (a test run, a build) would fall on part of a round only.
        started = time.monotonic()
        found = wait_for_quiet(patience=15)
        if time.monotonic() - started > 2:
            say(f"  ({found})")
        for target in targets if number % 2 == 0 else targets[::-1]:
            run = one_run(target, load.duration, load)
            tallies[target.label].runs.append(run)
            say(row(f"{target.label} #{number + 1}", run))
    say("  " + "-" * (len(HEADER) - 2))
    for target in targets:
        say(row(target.label, tallies[target.label]))
    for label, tally in tallies.items():
        if tally.non2xx or tally.socket_errors:
            say(
                f"  WARNING: {label} had {tally.non2xx} non-2xx answers and "
                f"{tally.socket_errors} socket errors; its figures are not the path it names"
            )
    return tallies
