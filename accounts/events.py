"""What accounts announces to the apps built on it, which it must not import.

accounts sits low in the layers (agents, keys and usage all need projects and members), so
when a project is made, or someone leaves one, it cannot call the apps above it; they
listen instead. Each is sent inside the transaction of the change: a receiver's failure
undoes the change too.
"""

from __future__ import annotations

from django.dispatch import Signal

# project_created.send(sender=Project, project=project): a project now exists.
project_created = Signal()

# project_deleted.send(sender=Project, project=project, by=user, ip=ip): an owner deleted
# the project; each app ends what would still work without its members (apikeys: its
# API keys and client tokens; webhooks: its endpoints). Sent before the memberships go,
# in the same transaction.
project_deleted = Signal()

# account_deleted.send(sender=User, user=user, ip=ip): the person deleted their account;
# each app ends what is theirs (apikeys: their personal access tokens). Sent in the
# deletion's transaction, after they have left every project.
account_deleted = Signal()
