"""The README's table of scheduled jobs is the one a deployment that prefers cron copies
(`SCHEDULER=off`), so it must name the jobs `run_scheduler` runs, with their commands and
the times it runs them at."""

from __future__ import annotations

import re
from pathlib import Path

from scheduler.jobs import DAY, HOUR, Job, jobs

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_job_rows() -> dict[str, tuple[str, str]]:
    """Each row of the Scheduled jobs table: the command's name → (command, when)."""
    text = README.read_text()
    section = text[text.index("### Scheduled jobs") :]
    section = section[: section.index("\n### ", 1)]
    rows = re.findall(r"^\| `python manage\.py ([^`]+)` \| ([^|]+) \|", section, re.M)
    return {command.split()[0]: (command, when.strip()) for command, when in rows}


def when_it_runs(job: Job) -> str:
    """How the README says when `job` runs, under the default settings."""
    if job.every == DAY:
        hours, minutes = divmod(job.offset // 60, 60)
        return f"daily at {hours:02d}:{minutes:02d} UTC"
    if job.every == HOUR and job.offset == 0:
        return "hourly"
    return f"every {job.every} s"


def test_the_readme_lists_every_job_the_scheduler_runs_and_no_other():
    scheduled = [job.name for job in jobs()]
    listed = [name for name in readme_job_rows() if name != "ingest_usage"]
    assert listed == scheduled


def test_the_readme_gives_each_job_its_command():
    rows = readme_job_rows()
    for job in jobs():
        assert rows[job.name][0] == " ".join(job.command), job.name


def test_the_readme_says_when_the_scheduler_runs_each_job():
    rows = readme_job_rows()
    for job in jobs():
        when = rows[job.name][1]
        if job.every < HOUR:
            # Cron's step is a minute: the row says that, then what the scheduler does.
            assert f"the scheduler: every {job.every} s" in when or (
                job.every == 60 and when == "every minute"
            ), job.name
        else:
            assert when.startswith(when_it_runs(job)), (job.name, when)
