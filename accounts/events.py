"""What accounts announces to the apps built on it, which it must not import.

accounts sits low in the layers (agents, keys and usage all need projects and members), so
when a project is made it cannot call the apps above it; they listen instead. Sent inside
the transaction that makes the project: a receiver's failure undoes the project too.
"""

from __future__ import annotations

from django.dispatch import Signal

# project_created.send(sender=Project, project=project): a project now exists.
project_created = Signal()
