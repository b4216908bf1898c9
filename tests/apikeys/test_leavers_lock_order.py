"""A removal from a project, and what else touches the leaver's tokens at the same moment,
take their locks in one order, so neither fails with a deadlock (a 500 on the members'
page, a 503 on /v1). The removal locks the membership rows it changes, not the project's
row nor the person's (accounts.services.membership_locks._current): every write that names
the project or the person (an audit event, a client token) checks that row when it
commits, and would otherwise wait for the removal while the removal waits for it.

PostgreSQL only: SQLite serialises every writer."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Membership
from accounts.services import membership_remove
from apikeys.models import ClientToken, PersonalAccessToken
from apikeys.services import (
    client_token_create,
    client_token_revoke,
    personal_token_create,
    personal_token_regenerate,
)
from tests.conftest import THREAD_SECONDS, backend_pid, finished, started, waits_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises all writers: lock order is PostgreSQL's.")


@pytest.fixture
def lous_pat(lou) -> PersonalAccessToken:
    return personal_token_create(user=lou, name="Lou's CLI")[0]


@pytest.fixture
def lous_browser(project, lous_pat) -> ClientToken:
    """A client token Lou's PAT minted in the project."""
    return client_token_create(project=project, personal_token=lous_pat, context={})[0]


def _outcome(into: dict[str, object], name: str, run: Callable[[], object]) -> Callable[[], None]:
    """`run`, its result or what it raised kept in `into[name]`."""

    def recorded() -> None:
        try:
            into[name] = run()
        except Exception as error:  # noqa: BLE001  # what the test reports
            into[name] = error

    return recorded


# What runs beside the removal: (the audit action it pauses before, in its transaction
# with its row locks taken; the change).
BESIDE = {
    "the project's servers revoke one of Lou's client tokens": (
        "client_token.revoked",
        lambda lou, pat, token: client_token_revoke(client_token=token, by=None, via="api"),
    ),
    "Lou regenerates the PAT that minted it": (
        "personal_token.regenerated",
        lambda lou, pat, token: personal_token_regenerate(
            personal_token=pat, by=lou, expires_at=None
        ),
    ),
}


@pytest.mark.parametrize("beside", BESIDE)
def test_a_removal_and_a_change_to_the_leavers_tokens_at_once_both_go_through(
    project, user, lou, lous_pat, lous_browser, beside, monkeypatch
):
    """The change has its token's row and is about to record itself when an owner removes
    Lou: both commit, in whichever order (the removal writes nothing to Lou's tokens: the
    client tokens end with the membership they were minted in). Before, the removal held
    the project's row and Lou's, which the change's commit checks (its audit event names
    them): a deadlock; later it revoked Lou's client tokens, and waited for this one."""
    import apikeys.services.common
    import apikeys.services.personal_tokens

    action, change = BESIDE[beside]
    inside, go_on = threading.Event(), threading.Event()
    changing: dict[str, int] = {}
    real_audit = apikeys.services.common.audit_record

    def pause_then_audit(**kwargs):
        if kwargs["action"] == action:
            changing["pid"] = backend_pid()
            inside.set()
            go_on.wait(timeout=THREAD_SECONDS)
        return real_audit(**kwargs)

    # Where each change looks it up: token_revoke's module (the client token's
    # revocation), the regeneration's.
    for module in (apikeys.services.common, apikeys.services.personal_tokens):
        monkeypatch.setattr(module, "audit_record", pause_then_audit)
    outcomes: dict[str, object] = {}
    mine = Membership.objects.get(project=project, user=lou)
    changer = started(_outcome(outcomes, "change", lambda: change(lou, lous_pat, lous_browser)))
    try:
        assert inside.wait(timeout=THREAD_SECONDS)
        remover = started(
            _outcome(outcomes, "removal", lambda: membership_remove(membership=mine, by=user))
        )
        waits_for(changing["pid"], remover)  # or is done already: it need not wait
    finally:
        go_on.set()
    finished(changer, remover)
    assert not isinstance(outcomes["change"], Exception), outcomes["change"]
    assert not isinstance(outcomes["removal"], Exception), outcomes["removal"]
    assert not Membership.objects.filter(project=project, user=lou).exists()
    ended = ClientToken.objects.select_related("personal_token__user").get(pk=lous_browser.pk)
    assert ended.end_reason_at(timezone.now()) is not None
