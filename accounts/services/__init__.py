"""Writes for users, projects and memberships. Each one is a transaction with its audit event.

The package is accounts' write interface: `from accounts.services import x` names every
service, exception and limit below, wherever it lives. A module each for:

- users: a new account (user_sign_up)
- projects: a project's creation and rename, and how many one person may be in
- memberships: members added, removed or leaving, their roles, a project handed over
- membership_locks: owner_hold and member_hold, which every change in a project takes
  first, and the refusals (MembershipError and its kinds)
- project_settings: an owner's settings (browser origins, key and two-factor policies)
- project_deletion, account_deletion: deleting a project for everyone; deleting an account

A test that patches a name a service looks up (audit_record, a helper) patches it in the
module that holds the service, not here: this package only re-exports."""

from accounts.services.account_deletion import (
    AccountDeletionRefused,
    account_delete,
    account_deletion_plan,
)
from accounts.services.membership_locks import (
    NOT_A_MEMBER,
    NOT_AN_OWNER,
    MembershipError,
    NoLongerAMember,
    NotAnOwner,
    member_hold,
    owner_hold,
)
from accounts.services.memberships import (
    LAST_OWNER,
    LastOwner,
    invitations_withdraw,
    membership_add,
    membership_remove,
    membership_set_role,
    project_transfer_ownership,
)
from accounts.services.project_deletion import project_delete
from accounts.services.project_settings import (
    MAX_POLICY_DAYS,
    PolicyRefused,
    project_set_allowed_origins,
    project_set_key_policy,
    project_set_two_factor_policy,
)
from accounts.services.projects import (
    ACCOUNT_DELETED,
    MAX_PROJECTS_PER_PERSON,
    TOO_MANY_PROJECTS,
    TooManyProjects,
    project_create,
    project_rename,
    project_room_hold,
    projects_full,
)
from accounts.services.users import user_sign_up

__all__ = [
    "ACCOUNT_DELETED",
    "AccountDeletionRefused",
    "LAST_OWNER",
    "LastOwner",
    "MAX_POLICY_DAYS",
    "MAX_PROJECTS_PER_PERSON",
    "MembershipError",
    "NOT_AN_OWNER",
    "NOT_A_MEMBER",
    "NoLongerAMember",
    "NotAnOwner",
    "PolicyRefused",
    "TOO_MANY_PROJECTS",
    "TooManyProjects",
    "account_delete",
    "account_deletion_plan",
    "invitations_withdraw",
    "member_hold",
    "membership_add",
    "membership_remove",
    "membership_set_role",
    "owner_hold",
    "project_create",
    "project_delete",
    "project_rename",
    "project_room_hold",
    "project_set_allowed_origins",
    "project_set_key_policy",
    "project_set_two_factor_policy",
    "project_transfer_ownership",
    "projects_full",
    "user_sign_up",
]
