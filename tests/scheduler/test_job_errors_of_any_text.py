"""A job's failure is recorded on its row whatever its message holds. An exception's text
may carry what a client sent (a database quotes the value it refused, a message formats a
stored name): PostgreSQL refuses a NUL in text, and no database encodes a lone surrogate,
so the row's update failed. A DataError was taken for the database being away and tried
again until the job's lease ran out (six hours for prune_usage), holding the job all that
while; an UnicodeEncodeError left run_job, which never raises, and ended its thread."""

from __future__ import annotations

import pytest
from django.utils import timezone

from scheduler.jobs import Job
from scheduler.models import ScheduledJob
from scheduler.runner import claim, run_job

# A lease of one second: without the fix the row's update is retried for that second and
# given up, so the test ends either way.
JOB = Job("odd-error", ("check",), every=60, lease=1)


@pytest.mark.parametrize(
    "text",
    ["a NUL \x00 in it", "a lone surrogate \ud800 in it", "both \udfff\x00 and a line\nbreak"],
    ids=["nul", "surrogate", "both"],
)
def test_a_failure_whose_message_no_database_keeps_is_recorded_and_frees_the_job(db, text):
    def broken(*args: object) -> None:
        raise ValueError(f"the value {text} was refused")

    assert claim(JOB, now=timezone.now(), holder="a")
    assert run_job(JOB, holder="a", call=broken) is False
    row = ScheduledJob.objects.get(name=JOB.name)
    assert row.last_succeeded is False and row.runs == 1
    assert row.lease_until is None and row.lease_holder == ""  # free for its next run
    assert "the value" in row.last_error and "was refused" in row.last_error
    assert "\x00" not in row.last_error and "\n" not in row.last_error
