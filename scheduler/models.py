"""One row per scheduled job: when it runs next, and who holds it while it runs."""

from __future__ import annotations

from django.db import models


class ScheduledJob(models.Model):
    """A job's schedule and its lease. A scheduler runs a job only after claiming it with
    one conditional UPDATE (due, and nobody's lease running), so two schedulers running at
    once never run the same job twice; a scheduler that dies mid-run loses the job when its
    lease ends, and another takes it."""

    name = models.CharField(max_length=64, primary_key=True)
    next_run_at = models.DateTimeField()
    lease_holder = models.CharField(max_length=128, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_succeeded = models.BooleanField(null=True)
    last_error = models.CharField(max_length=500, blank=True)
    runs = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
