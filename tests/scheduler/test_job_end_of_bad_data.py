"""A job whose end cannot be recorded for a reason in the data (a value the database
refuses, a constraint the row breaks) does not hold its lease. Only a database that is
away, or busy (a lock or statement timeout, a serialization failure), is waited out:
_record_end took every database error for an outage and retried it until the lease ran
out, ten minutes for detection and webhook delivery, six hours for prune_usage, all that
while holding the job that works for every tenant."""

from __future__ import annotations

import pytest
from django.db import connection
from django.utils import timezone

from scheduler import runner
from scheduler.jobs import Job
from scheduler.models import ScheduledJob
from scheduler.runner import claim, run_job

JOB = Job("bad-row", ("check",), every=60, lease=600)


def count_that_cannot_go_up() -> None:
    """The row's count of runs where the database refuses one more: PostgreSQL's integer
    ends at 2**31 - 1 (runs + 1 is a DataError); on SQLite, whose integers do not end there,
    a count below the column's CHECK (runs >= 0), stored with the check off, so that one
    more still breaks it (an IntegrityError)."""
    table = ScheduledJob._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"UPDATE {table} SET runs = %s WHERE name = %s", [2**31 - 1, JOB.name])
        else:
            cursor.execute("PRAGMA ignore_check_constraints = ON")
            cursor.execute(f"UPDATE {table} SET runs = -2 WHERE name = %s", [JOB.name])
            cursor.execute("PRAGMA ignore_check_constraints = OFF")


@pytest.fixture
def no_waiting(monkeypatch):
    def sleep(seconds: float) -> None:
        raise AssertionError("the end was retried as if the database were away")

    monkeypatch.setattr(runner.time, "sleep", sleep)


@pytest.mark.parametrize("fails", [False, True], ids=["succeeded", "failed"])
def test_a_job_whose_end_the_database_refuses_for_its_data_frees_its_lease_at_once(
    db, no_waiting, fails, caplog
):
    def job(*args: object) -> None:
        if fails:
            raise ValueError("it went wrong")

    now = timezone.now()
    assert claim(JOB, now=now, holder="a")
    count_that_cannot_go_up()

    assert run_job(JOB, holder="a", call=job) is not fails

    row = ScheduledJob.objects.get(name=JOB.name)
    assert row.lease_until is None and row.lease_holder == ""  # free for its next run
    assert row.next_run_at > now and row.last_finished_at is not None
    assert row.last_succeeded is (not fails)
    assert row.runs == (2**31 - 1 if connection.vendor == "postgresql" else -2)  # not the bad part
    assert (row.last_error != "") is fails
    assert "could not be recorded" in caplog.text
