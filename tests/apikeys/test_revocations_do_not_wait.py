"""An owner's revocation of a key goes through at once while another owner's change is in
progress: a rename, someone's role, someone's removal. The revocation holds only the
revoker's own membership (member_hold, FOR KEY SHARE); the owners' changes lock the rows
they need in modes that leave it be (owner_hold: the owner's own row, FOR SHARE; the
changes of roles and members: the owners' rows, FOR NO KEY UPDATE). Before, both locked
every owner's row FOR UPDATE, and a leaked key waited for the rename (or, past the lock
timeout, the revocation failed).

PostgreSQL only: SQLite serialises every writer."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection

from accounts.models import Membership, Project, User
from accounts.services import membership_remove, membership_set_role, project_rename
from apikeys.models import ApiKey
from apikeys.services import api_key_revoke
from tests.conftest import THREAD_SECONDS, backend_pid, finished, started, waits_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: the locks are PostgreSQL's.")


@pytest.fixture
def grace(project, make_user) -> User:
    """A second owner of the project."""
    other = make_user(email="grace@example.com", name="Grace")
    Membership.objects.create(project=project, user=other, role=Membership.Role.OWNER)
    return other


@pytest.fixture
def lou(project, make_user) -> User:
    member = make_user(email="lou@example.com", name="Lou")
    Membership.objects.create(project=project, user=member)
    return member


# Grace's change, paused in its transaction (its locks taken) before its audit event.
type Change = Callable[[Project, User, User], object]
GRACES_CHANGES: dict[str, tuple[str, Change]] = {
    "renames the project": (
        "project.renamed",
        lambda p, grace, lou: project_rename(project=p, name="Renamed", by=grace),
    ),
    "makes a member an owner": (
        "membership.role_changed",
        lambda p, grace, lou: membership_set_role(
            membership=Membership.objects.get(project=p, user=lou), role="owner", by=grace
        ),
    ),
    "removes a member": (
        "membership.removed",
        lambda p, grace, lou: membership_remove(
            membership=Membership.objects.get(project=p, user=lou), by=grace
        ),
    ),
}


@pytest.mark.parametrize("change", GRACES_CHANGES)
def test_an_owners_revocation_does_not_wait_for_another_owners_change(
    project, user, grace, lou, make_key, change, monkeypatch
):
    import accounts.services.memberships
    import accounts.services.projects

    action, graces_change = GRACES_CHANGES[change]
    key = make_key(project, name="Leaked")[0]
    inside, go_on = threading.Event(), threading.Event()
    graces: dict[str, int] = {}
    real_audit = accounts.services.projects.audit_record

    def pause_then_audit(**kwargs):
        if kwargs["action"] == action:
            graces["pid"] = backend_pid()
            inside.set()
            go_on.wait(timeout=THREAD_SECONDS)
        return real_audit(**kwargs)

    # Where each change looks it up: the rename's module, the role change's and removal's.
    for module in (accounts.services.projects, accounts.services.memberships):
        monkeypatch.setattr(module, "audit_record", pause_then_audit)
    revoked: list[bool] = []
    changing = started(lambda: graces_change(project, grace, lou))
    try:
        assert inside.wait(timeout=THREAD_SECONDS)
        revoking = started(lambda: revoked.append(api_key_revoke(api_key=key, by=user)))
        waited = waits_for(graces["pid"], revoking)
        if not waited:
            revoking.join(timeout=THREAD_SECONDS)
        done_before_grace = not revoking.is_alive()
    finally:
        go_on.set()
    finished(changing, revoking)
    assert not waited and done_before_grace
    assert revoked == [True]
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_a_handover_of_leavers_keys_sent_twice_at_once_hands_each_key_once(
    project, user, grace, lou, make_key, monkeypatch
):
    """owner_hold holds the sender's row only, and then the project's: the second
    handover, sent by another owner while the first is in progress, waits for it and then
    finds nothing left to hand."""
    import apikeys.services.api_keys
    from apikeys.services import api_keys_transfer_from_leavers
    from audit.models import AuditEvent

    key = make_key(project, name="Lou's", created_by=lou)[0]
    membership_remove(membership=Membership.objects.get(project=project, user=lou), by=user)
    inside, go_on = threading.Event(), threading.Event()
    first: dict[str, int] = {}
    real_audit = apikeys.services.api_keys.audit_record

    def pause_then_audit(**kwargs):
        if kwargs["action"] == "api_key.transferred" and not inside.is_set():
            first["pid"] = backend_pid()
            inside.set()
            go_on.wait(timeout=THREAD_SECONDS)
        return real_audit(**kwargs)

    monkeypatch.setattr(apikeys.services.api_keys, "audit_record", pause_then_audit)
    handed: dict[str, int] = {}

    def hand(to: User, by: User) -> Callable[[], None]:
        return lambda: handed.update(
            {by.email: api_keys_transfer_from_leavers(project=project, to=to, by=by)}
        )

    firsts = started(hand(grace, user))
    try:
        assert inside.wait(timeout=THREAD_SECONDS)
        seconds = started(hand(user, grace))
        waited = waits_for(first["pid"], seconds)
    finally:
        go_on.set()
    finished(firsts, seconds)
    assert waited
    assert handed == {user.email: 1, grace.email: 0}
    assert ApiKey.objects.get(pk=key.pk).created_by == grace
    assert AuditEvent.objects.filter(action="api_key.transferred").count() == 1


def test_two_owners_saving_the_projects_origins_at_once_take_turns(
    project, user, grace, monkeypatch
):
    """owner_hold holds the sender's row only, and then the project's: the second save
    waits for the first, reads its list as the one it replaces, and writes its own.
    Without the project's row, both replaced the list they read, and the second failed on
    the unique constraint (an origin the first had just written)."""
    import accounts.services.project_settings
    from accounts.services import project_set_allowed_origins
    from audit.models import AuditEvent

    inside, go_on = threading.Event(), threading.Event()
    first: dict[str, int] = {}
    real_audit = accounts.services.project_settings.audit_record

    def pause_then_audit(**kwargs):
        if kwargs["action"] == "project.origins_changed" and not inside.is_set():
            first["pid"] = backend_pid()
            inside.set()
            go_on.wait(timeout=THREAD_SECONDS)
        return real_audit(**kwargs)

    monkeypatch.setattr(accounts.services.project_settings, "audit_record", pause_then_audit)
    saved: dict[str, object] = {}

    def save(origins: list[str], by: User) -> Callable[[], None]:
        def run() -> None:
            try:
                saved[by.email] = project_set_allowed_origins(
                    project=Project.objects.get(pk=project.pk), origins=origins, by=by
                )
            except Exception as error:  # noqa: BLE001  # what the test reports
                saved[by.email] = error

        return run

    adas = started(save(["https://app.example.com"], user))
    try:
        assert inside.wait(timeout=THREAD_SECONDS)
        graces = started(save(["https://app.example.com", "https://admin.example.com"], grace))
        waited = waits_for(first["pid"], graces)
    finally:
        go_on.set()
    finished(adas, graces)
    assert waited
    assert not isinstance(saved[grace.email], Exception), saved[grace.email]
    project.refresh_from_db()
    assert project.allowed_origins == ["https://admin.example.com", "https://app.example.com"]
    graces_event = AuditEvent.objects.get(action="project.origins_changed", actor=grace)
    assert graces_event.metadata["from"] == ["https://app.example.com"]
