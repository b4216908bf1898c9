"""The execution log is kept as long as the usage log, then goes: prune_executions, daily
under run_scheduler with USAGE_RETENTION. Each row holds what a call sent and what its
agent answered, and nothing removed them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from agents.models import Execution
from agents.retention import executions_prune
from scheduler.jobs import jobs

NOW = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def ran(project, *, at: datetime, prompt: str = "hello") -> Execution:
    return Execution.objects.create(
        project=project,
        agent_name="my-agent",
        type=Execution.Type.INVOKE,
        status=Execution.Status.SUCCESS,
        input={"prompt": prompt},
        output=prompt,
        created_at=at,
    )


def kept() -> set[str]:
    return set(Execution.objects.values_list("input__prompt", flat=True))


def test_runs_before_the_cut_off_go_in_every_project_and_the_rest_stay(
    project, make_user, make_project
):
    theirs = make_project(make_user(), name="Theirs")
    # The cut-off for 90 days at 09:30 is the start of that hour, 90 days before: 09:00.
    cutoff = datetime(2026, 9, 8, 9, 0, tzinfo=UTC)
    ran(project, at=cutoff - timedelta(days=300), prompt="a year ago")
    ran(theirs, at=cutoff - timedelta(microseconds=1), prompt="just before")
    ran(project, at=cutoff, prompt="at the cut-off")
    ran(theirs, at=NOW - timedelta(hours=1), prompt="an hour ago")
    ran(project, at=NOW + timedelta(days=1), prompt="dated ahead")

    pruned = executions_prune(older_than=timedelta(days=90), now=NOW)

    assert (pruned.cutoff, pruned.removed) == (cutoff, 2)
    assert kept() == {"at the cut-off", "an hour ago", "dated ahead"}


def test_more_than_a_statements_batch_goes_in_one_run(project):
    old = NOW - timedelta(days=200)
    Execution.objects.bulk_create(
        Execution(
            project=project,
            agent_name="my-agent",
            type=Execution.Type.INVOKE,
            status=Execution.Status.SUCCESS,
            public_id=f"exec_old{n}",
            created_at=old + timedelta(seconds=n % 7),  # ties across batches
        )
        for n in range(2_345)
    )
    ran(project, at=NOW, prompt="today")
    assert executions_prune(older_than=timedelta(days=90), now=NOW).removed == 2_345
    assert kept() == {"today"}


def test_the_command_says_what_went(project):
    ran(project, at=datetime(2000, 1, 1, tzinfo=UTC), prompt="long ago")
    ran(project, at=datetime.now(UTC), prompt="now")
    out = StringIO()
    call_command("prune_executions", "--older-than", "90d", stdout=out)
    assert out.getvalue().startswith("Cut-off: ")
    assert "removed 1 execution that ran before it." in out.getvalue()
    assert kept() == {"now"}


@pytest.mark.parametrize("age", ["0h", "90", "٣d", "90 d", "-1d", "9999999d", ""])
def test_the_command_refuses_an_age_it_cannot_read_and_removes_nothing(project, age):
    ran(project, at=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(CommandError):
        call_command("prune_executions", "--older-than", age, stdout=StringIO())
    assert Execution.objects.count() == 1


@override_settings(USAGE_RETENTION="30d")
def test_the_scheduler_keeps_executions_as_long_as_the_usage_log():
    commands = {job.name: job.command for job in jobs()}
    assert commands["prune_executions"] == ("prune_executions", "--older-than", "30d")
    assert commands["prune_usage"] == ("prune_usage", "--older-than", "30d")
