"""The audit log: what is recorded, who sees it, filters, pages, CSV, and that it only grows."""

from __future__ import annotations

import csv
import html as html_lib
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Membership, Project, User
from accounts.services import (
    membership_add,
    membership_remove,
    project_rename,
    project_set_allowed_origins,
)
from accounts.views import audit_log
from apikeys.services import (
    api_key_create,
    api_key_rename,
    api_key_revoke,
    api_key_roll,
    client_token_create,
    client_token_revoke,
    client_tokens_revoke_for_key,
    personal_token_create,
    personal_token_revoke,
)
from audit.log import audit_record
from audit.models import AuditEvent, AuditLogIsAppendOnly
from audit.reads import AuditEntry, AuditFilters, audit_page
from core.csv_stream import csv_safe
from tests.conftest import PASSWORD

LOGIN = reverse("accounts:login")
USER_AUDIT = reverse("accounts:user_audit")
USER_AUDIT_CSV = reverse("accounts:user_audit_csv")


def project_audit(project: Project) -> str:
    return reverse("accounts:project_audit", kwargs={"slug": project.slug})


def project_audit_csv(project: Project) -> str:
    return reverse("accounts:project_audit_csv", kwargs={"slug": project.slug})


def sign_in(client: Client, email: str, password: str, address: str = "203.0.113.5"):
    return client.post(LOGIN, {"username": email, "password": password}, REMOTE_ADDR=address)


def read_csv(response: StreamingHttpResponse) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def page_text(response) -> str:
    """The page's text without tags, whitespace collapsed, for reading labels."""
    html = response.content.decode()
    return html_lib.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def other_user(make_user) -> User:
    return make_user(email="grace@example.com", name="Grace Hopper")


@pytest.fixture
def other_project(other_user: User) -> Project:
    return Project.objects.for_user(other_user).get()


# -- What is recorded, and where it shows ---------------------------------------------------


def test_every_project_event_kind_shows_on_the_project_audit_page(
    signed_in, user, project, other_user
):
    project_rename(project=project, name="Renamed project", by=user, ip="198.51.100.1")
    project_set_allowed_origins(
        project=project, origins=["https://app.example.com"], by=user, ip="198.51.100.1"
    )
    membership = membership_add(project=project, user=other_user, role="member", by=user)
    membership_remove(membership=membership, by=user)
    key, _ = api_key_create(project=project, name="Production", created_by=user)
    api_key_rename(api_key=key, name="Prod", by=user)
    client_token, _ = client_token_create(project=project, context={}, api_key=key)
    client_token_revoke(client_token=client_token, by=user)
    client_token_create(project=project, context={}, api_key=key)
    client_tokens_revoke_for_key(api_key=key, by=user)
    api_key_revoke(api_key=key, by=user)
    audit_record(
        action="flag.acknowledged",
        actor=user,
        project=project,
        target_label="Used from a new network",
        metadata={"kind": "new_network", "severity": "medium"},
    )

    response = signed_in.get(project_audit(project))

    assert response.status_code == 200
    text = page_text(response)
    for label in (
        "Project created",
        "Project renamed",
        "Allowed origins changed",
        "Member added",
        "Member removed",
        "API key created",
        "API key renamed",
        "API key revoked",
        "Client token created",
        "Client token revoked",
        "Client tokens of a key revoked",
        "Alert acknowledged",
    ):
        assert label in text, label
    assert "198.51.100.1" in text
    assert "Ada's project → Renamed project" in text
    # A client token minted with an API key names the key as its actor.
    assert "API key Prod (" in text
    # Sign-ins and personal tokens belong to no project.
    assert "Signed in" not in text
    assert "Signed up" not in text


def test_a_rolls_times_read_as_dates_and_durations_not_as_stored(signed_in, user, project):
    """A roll's details showed its stored values: 'previous expires at:
    2026-12-07T05:49:44.233036+00:00' and 'overlap seconds: 86400', beside a key's
    'expires: 9 Dec 2026, 05:49 UTC'. Each time reads as the other dates do, in UTC."""
    key, _ = api_key_create(project=project, name="Production", created_by=user)
    api_key_roll(api_key=key, by=user, overlap=timedelta(hours=24))
    key.refresh_from_db()
    text = page_text(signed_in.get(project_audit(project)))
    ends = f"{key.previous_expires_at:%-d %b %Y, %H:%M} UTC"
    assert f"previous expires {ends}" in text  # name and value, a colon between them in CSS
    assert "overlap 24 hours" in text
    assert "+00:00" not in text and "seconds" not in text


@pytest.mark.parametrize(
    "stored",
    [
        {"previous_expires_at": "9999-12-31T23:59:59-05:00"},
        {"expires_at": "0001-01-01T00:00:00+05:00"},
        {"reported_at": "not a time"},
        {"reported_at": {"nested": [1, None]}},
        {"overlap_seconds": "86400"},
        {"overlap_seconds": True},
        {"ttl_seconds": 10**40},
        {"previous_expires_at": None},
    ],
)
def test_a_stored_time_or_duration_the_page_cannot_read_is_shown_as_stored_not_a_500(
    signed_in, user, project, stored
):
    """Found in review: an event's '_at' values are read as dates in UTC, and a time at
    the calendar's edge with an offset (year 9999, '-05:00') overflowed on the way to UTC:
    the project's whole audit page answered 500. Events are append-only and keep what
    older code wrote; one the page cannot read as a date reads as stored."""
    record(project, user, "api_key.rolled", metadata=stored)
    response = signed_in.get(project_audit(project))
    assert response.status_code == 200
    (name, value), *_ = stored.items()
    if name == "previous_expires_at" and value:
        assert "9999-12-31T23:59:59-05:00" in page_text(response)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [(True, "true"), (False, "false"), (-3600, "-3600"), (-1, "-1"), (86400.5, "86400.5")],
)
def test_a_stored_duration_that_is_not_a_count_of_seconds_reads_as_stored(
    signed_in, user, project, stored, shown
):
    """A bool is an int to Python and a negative one divides evenly: an odd stored
    'overlap_seconds' read 'True seconds' or '-1 hours', a duration nobody chose. Only a
    whole number of seconds, not negative, is read as a duration; anything else as stored."""
    record(project, user, "api_key.rolled", metadata={"overlap_seconds": stored})
    text = page_text(signed_in.get(project_audit(project)))
    assert f"overlap seconds {shown} " in text
    assert "hour" not in text and "none" not in text and "yes" not in text


def test_a_member_who_is_not_an_owner_can_read_the_project_audit_log(
    client, user, project, other_user
):
    membership_add(project=project, user=other_user, role="member", by=user)
    client.force_login(other_user)
    response = client.get(project_audit(project))
    assert response.status_code == 200
    assert "Member added" in page_text(response)


def test_another_projects_audit_page_and_export_are_404(signed_in, other_project):
    assert signed_in.get(project_audit(other_project)).status_code == 404
    assert signed_in.get(project_audit_csv(other_project)).status_code == 404


def test_a_member_of_one_project_never_sees_another_projects_audit_events(
    signed_in, user, project, other_user, other_project
):
    api_key_create(project=other_project, name="Grace secret key", created_by=other_user)
    theirs = AuditEvent.objects.filter(project=other_project).first()
    assert theirs is not None

    page = signed_in.get(project_audit(project))
    export = read_csv(signed_in.get(project_audit_csv(project)))
    # Their event as a page cursor says nothing about it.
    cursor = signed_in.get(project_audit(project), {"before": theirs.pk})

    assert "Grace secret key" not in page.content.decode()
    assert "grace@example.com" not in page.content.decode()
    assert not any("Grace" in cell for row in export for cell in row)
    assert cursor.status_code == 400
    assert "This page link is damaged or out of date" in cursor.content.decode()
    assert "Grace secret key" not in cursor.content.decode()


def test_personal_token_and_sign_in_events_show_on_the_users_page(client, user, project):
    sign_in(client, user.email, PASSWORD)
    pat, _ = personal_token_create(user=user, name="Laptop CLI", ip="192.0.2.44")
    personal_token_revoke(personal_token=pat, by=user)
    api_key_create(project=project, name="Production", created_by=user)

    response = client.get(USER_AUDIT)

    assert response.status_code == 200
    text = page_text(response)
    for label in (
        "Signed up",
        "Signed in",
        "Personal access token created",
        "Personal access token revoked",
        "API key created",
        "Project created",
    ):
        assert label in text, label
    assert "Laptop CLI" in text
    assert "192.0.2.44" in text
    # Project events name their project on the user's page.
    assert project.name in text
    # And personal tokens never show on a project's page.
    assert "Laptop CLI" not in page_text(client.get(project_audit(project)))


def test_a_users_page_does_not_show_other_users_events(signed_in, user, other_user):
    personal_token_create(user=other_user, name="Grace laptop")
    sign_in(Client(), other_user.email, "not her password")

    text = signed_in.get(USER_AUDIT).content.decode()
    export = read_csv(signed_in.get(USER_AUDIT_CSV))

    assert "Grace laptop" not in text
    assert "grace@example.com" not in text
    assert all("grace" not in cell for row in export for cell in row)


def test_a_successful_sign_in_is_recorded_with_the_address(client, user):
    sign_in(client, user.email, PASSWORD, address="203.0.113.77")
    event = AuditEvent.objects.get(action="user.signed_in")
    assert event.actor == user
    assert event.actor_email == user.email
    assert event.ip_address == "203.0.113.77"
    assert event.project is None


def test_a_failed_sign_in_on_an_account_shows_on_its_owners_page_without_the_password(
    signed_in, user
):
    sign_in(Client(), "ADA@example.com", "hunter2-wrong-password", address="203.0.113.9")

    event = AuditEvent.objects.get(action="user.sign_in_failed")
    assert event.actor == user
    assert event.ip_address == "203.0.113.9"
    stored = " ".join(str(getattr(event, f.attname)) for f in AuditEvent._meta.concrete_fields)
    assert "hunter2" not in stored
    assert "*****" not in stored

    text = page_text(signed_in.get(USER_AUDIT))
    assert "Sign-in failed" in text
    assert "203.0.113.9" in text


def test_a_failed_sign_in_for_an_unknown_email_is_kept_with_no_actor_and_shown_nowhere(
    signed_in, user, project
):
    sign_in(Client(), "nobody@example.com", "whatever", address="203.0.113.10")

    event = AuditEvent.objects.get(action="user.sign_in_failed")
    assert event.actor is None
    assert event.project is None
    assert event.actor_email == "nobody@example.com"
    assert event.ip_address == "203.0.113.10"
    assert "nobody@example.com" not in signed_in.get(USER_AUDIT).content.decode()
    assert "nobody@example.com" not in signed_in.get(project_audit(project)).content.decode()


def test_a_password_typed_into_the_email_box_is_not_kept(client, db):
    sign_in(client, "my secret passphrase", "oops")
    event = AuditEvent.objects.get(action="user.sign_in_failed")
    assert event.actor_email == ""
    assert "passphrase" not in event.target_label


def test_failures_that_lock_an_account_out_are_marked_so(client, user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        sign_in(client, user.email, "wrong", address="10.9.9.9")

    failures = list(AuditEvent.objects.filter(action="user.sign_in_failed").order_by("id"))
    assert len(failures) == settings.AXES_FAILURE_LIMIT + 1
    assert not failures[0].metadata.get("locked_out")
    # The failure that reached the limit, and the refused attempt after it.
    assert failures[-2].metadata == {"locked_out": True}
    assert failures[-1].metadata == {"locked_out": True}


def test_audit_log_links_are_in_the_settings_nav_and_the_account_menu(signed_in, project):
    html = signed_in.get(reverse("accounts:project_settings", kwargs={"slug": project.slug}))
    assert f'href="{project_audit(project)}"' in html.content.decode()
    assert f'href="{USER_AUDIT}"' in html.content.decode()


def test_signed_out_visitors_are_sent_to_sign_in(client, project):
    for url in (USER_AUDIT, USER_AUDIT_CSV, project_audit(project), project_audit_csv(project)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(LOGIN)


# -- Filters ---------------------------------------------------------------------------------


def record(project: Project | None, actor: User | None, action: str, **fields) -> AuditEvent:
    created_at = fields.pop("created_at", None)
    event = audit_record(action=action, actor=actor, project=project, **fields)
    if created_at is not None:
        # Back-date through the base manager: the application itself cannot.
        AuditEvent._base_manager.filter(pk=event.pk).update(created_at=created_at)
    return event


def test_the_action_filter_narrows_to_one_kind_of_event(signed_in, user, project):
    api_key_create(project=project, name="Production", created_by=user)
    project_rename(project=project, name="Renamed", by=user)

    text = page_text(signed_in.get(project_audit(project), {"action": "api_keys"}))

    assert "API key created" in text
    assert "Project renamed" not in text
    assert "Project created" not in text


def test_the_actor_filter_narrows_to_one_persons_events(signed_in, user, project, other_user):
    membership_add(project=project, user=other_user, role="owner", by=user)
    project_rename(project=project, name="Renamed by Grace", by=other_user)

    text = page_text(signed_in.get(project_audit(project), {"actor": "GRACE@"}))

    assert "Project renamed" in text
    assert "Member added" not in text


def test_a_whole_address_in_the_actor_filter_is_that_person_only(
    signed_in, user, project, make_user
):
    """The actor column links each person to "only events by" them: someone whose address
    holds theirs (joann@ for ann@) is another person, not in that list or its export."""
    ann, joann = make_user(email="ann@example.com"), make_user(email="joann@example.com")
    membership_add(project=project, user=ann, role="owner", by=user)
    membership_add(project=project, user=joann, role="owner", by=user)
    project_rename(project=project, name="Renamed by Ann", by=ann)
    project_rename(project=project, name="Renamed by Joann", by=joann)

    html = signed_in.get(project_audit(project)).content.decode()
    link = re.search(rf'href="([^"]*\?actor_id={ann.pk})"', html)
    assert link and "Only events by ann@example.com" in html
    text = page_text(signed_in.get(html_lib.unescape(link[1])))
    # The project's name (Joann's) heads the page; the events say "from → to".
    assert "→ Renamed by Ann" in text and "→ Renamed by Joann" not in text
    for typed in ("ANN@example.com", " ann@example.com "):
        rows = read_csv(signed_in.get(project_audit_csv(project), {"actor": typed}))
        assert {row[2] for row in rows[1:]} == {"ann@example.com"}, typed
    # Part of an address still finds everyone whose address holds it.
    text = page_text(signed_in.get(project_audit(project), {"actor": "ann@"}))
    assert "→ Renamed by Ann" in text and "→ Renamed by Joann" in text


def actor_link(html: str, address: str) -> str:
    """The actor column's "only events by" link on the row with the newest event by
    `address`."""
    link = re.search(rf'<a href="([^"]*)"[^>]*title="Only events by {re.escape(address)}"', html)
    assert link, address
    return html_lib.unescape(link[1])


def test_the_actor_link_is_the_person_not_whoever_holds_the_address_now(
    signed_in, user, project, make_user
):
    """An address is reused (the account deleted, another signs up with it) or changed:
    the actor column's link follows the person who acted, not the address."""
    former = make_user(email="reused@example.com")
    membership_add(project=project, user=former, role="owner", by=user)
    project_rename(project=project, name="By the former account", by=former)
    former.delete()
    newcomer = make_user(email="reused@example.com")
    membership_add(project=project, user=newcomer, role="owner", by=user)
    project_rename(project=project, name="By the newcomer", by=newcomer)
    User.objects.filter(pk=newcomer.pk).update(email="renamed@example.com")
    newcomer.refresh_from_db()
    project_rename(project=project, name="By the newcomer, renamed", by=newcomer)

    html = signed_in.get(project_audit(project)).content.decode()
    link = actor_link(html, "renamed@example.com")
    assert "actor=" not in link
    text = page_text(signed_in.get(link))
    assert "Only events by renamed@example.com , under any address they used" in text
    assert "→ By the newcomer, renamed" in text and "→ By the newcomer" in text
    assert "→ By the former account" not in text
    assert "Member added" not in text  # Ada's, though the newcomer is its target
    rows = read_csv(signed_in.get(link.replace(project_audit(project), project_audit_csv(project))))
    assert {row[2] for row in rows[1:]} == {"reused@example.com", "renamed@example.com"}
    # A typed address is still the address, whoever held it.
    text = page_text(signed_in.get(project_audit(project), {"actor": "reused@example.com"}))
    assert "→ By the former account" in text and "→ By the newcomer" in text
    assert "→ By the newcomer, renamed" not in text


@pytest.mark.parametrize("odd", ["²", "-3", "0", "9" * 30, "1\x00", "x"])
def test_an_odd_person_in_the_actor_link_is_a_damaged_link_not_a_500(signed_in, project, odd):
    response = signed_in.get(project_audit(project), {"actor_id": odd})
    assert response.status_code == 400
    assert "This page link is damaged or out of date" in response.content.decode()


def test_a_person_from_another_project_or_deleted_shows_nothing_of_theirs(
    signed_in, user, project, other_user, other_project
):
    project_rename(project=other_project, name="Grace's secret rename", by=other_user)
    gone = User.objects.create_user(email="gone@example.com", password=PASSWORD)
    gone_id = gone.pk
    gone.delete()
    for person in (other_user.pk, gone_id, 2**63 - 1):
        response = signed_in.get(project_audit(project), {"actor_id": str(person)})
        assert response.status_code == 200
        text = page_text(response)
        assert "No events match these filters" in text
        assert "grace@example.com" not in text and "secret rename" not in text
        export = read_csv(signed_in.get(project_audit_csv(project), {"actor_id": str(person)}))
        assert export[1:] == []


def test_the_users_page_ignores_a_person_filter(signed_in, user, other_user, project):
    project_rename(project=project, name="Mine", by=user)
    text = page_text(signed_in.get(USER_AUDIT, {"actor_id": str(other_user.pk)}))
    assert "→ Mine" in text


def test_the_date_range_includes_both_whole_days(signed_in, user, project):
    day = datetime(2025, 6, 3, tzinfo=UTC)
    for label, moment in (
        ("before-range", day - timedelta(seconds=1)),
        ("first-moment", day),
        ("last-moment", day + timedelta(days=2) - timedelta(microseconds=1)),
        ("after-range", day + timedelta(days=2)),
    ):
        record(project, user, "project.renamed", target_label=label, created_at=moment)

    text = page_text(
        signed_in.get(project_audit(project), {"since": "2025-06-03", "until": "2025-06-04"})
    )

    assert "first-moment" in text and "last-moment" in text
    assert "before-range" not in text and "after-range" not in text


def test_the_address_filter_narrows_to_one_address(signed_in, user, project):
    record(project, user, "project.renamed", target_label="from-here", ip="192.0.2.1")
    record(project, user, "project.renamed", target_label="from-there", ip="192.0.2.2")

    text = page_text(signed_in.get(project_audit(project), {"ip": "192.0.2.1"}))

    assert "from-here" in text
    assert "from-there" not in text


def test_the_users_page_filters_sign_ins_apart(client, user):
    sign_in(client, user.email, "wrong")
    sign_in(client, user.email, PASSWORD)
    personal_token_create(user=user, name="Laptop CLI")

    text = page_text(client.get(USER_AUDIT, {"action": "account"}))

    assert "Sign-in failed" in text and "Signed in" in text
    assert "Laptop CLI" not in text


def test_bad_filters_stand_beside_their_field(signed_in, project):
    response = signed_in.get(
        project_audit(project),
        {"action": "nonsense", "ip": "not-an-ip", "since": "2025-06-05", "until": "2025-06-01"},
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert 'id="id_action_error"' in html
    assert 'id="id_ip_error"' in html
    assert 'id="id_until_error"' in html
    assert "Correct the filters above" in html


def test_the_users_page_offers_no_actor_filter_and_no_project_only_groups(signed_in, project):
    user_page = signed_in.get(USER_AUDIT).content.decode()
    project_page = signed_in.get(project_audit(project)).content.decode()
    assert 'name="actor"' not in user_page
    assert 'value="personal_tokens"' in user_page
    assert 'name="actor"' in project_page
    # Sign-ins and personal tokens never belong to a project: no use offering them there.
    assert 'value="account"' not in project_page
    assert 'value="personal_tokens"' not in project_page


def test_htmx_gets_the_log_with_the_filters_out_of_band_and_a_tidy_url(signed_in, project):
    response = signed_in.get(
        project_audit(project),
        {"action": "project", "actor": "", "ip": ""},
        headers={"HX-Request": "true"},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert '<div id="audit-log"' in html
    assert 'hx-swap-oob="true"' in html
    assert "<html" not in html
    assert response["HX-Push-Url"] == f"{project_audit(project)}?action=project"
    assert "HX-Request" in response["Vary"]


# -- Pages ----------------------------------------------------------------------------------


def test_paging_older_then_newer_walks_every_event_once_in_order(user, project):
    start = timezone.now() - timedelta(days=1)
    for n in range(130):
        # Groups of three share a timestamp: the id breaks the tie.
        record(project, user, "project.renamed", created_at=start + timedelta(seconds=n // 3))
    scope = AuditEvent.objects.for_project(project)
    expected = list(scope.order_by("-created_at", "-id").values_list("pk", flat=True))

    seen: list[int] = []
    page = audit_page(scope=scope, filters=AuditFilters(), size=20)
    pages = [page]
    while True:
        seen += [entry.event.pk for entry in page.entries]
        if page.older is None:
            break
        page = audit_page(scope=scope, filters=AuditFilters(), before=page.older, size=20)
        pages.append(page)
    assert seen == expected
    assert pages[0].is_newest and not pages[-1].older

    back: list[int] = []
    page = pages[-1]
    while True:
        back = [entry.event.pk for entry in page.entries] + back
        if page.newer is None:
            break
        page = audit_page(scope=scope, filters=AuditFilters(), after=page.newer, size=20)
    assert back == expected
    assert page.is_newest


def test_the_pager_links_walk_a_filtered_log_over_http(signed_in, user, project):
    for n in range(120):
        record(project, user, "api_key.created", target_label=f"key-{n:03}")
        record(project, user, "project.renamed", target_label=f"rename-{n:03}")

    url = f"{project_audit(project)}?action=api_keys"
    labels: list[str] = []
    while url:
        response = signed_in.get(url)
        assert response.status_code == 200
        html = response.content.decode()
        labels += re.findall(r">(key-\d{3})<", html)
        assert "rename-" not in html
        older = re.search(r'href="([^"]+)"[^>]*rel="next"', html)
        url = older.group(1).replace("&amp;", "&") if older else ""

    assert labels == [f"key-{n:03}" for n in reversed(range(120))]


def test_a_damaged_cursor_says_so(signed_in, project):
    response = signed_in.get(project_audit(project), {"before": "abc"})
    assert response.status_code == 400
    assert "This page link is damaged or out of date" in response.content.decode()


# -- CSV export -----------------------------------------------------------------------------


def test_the_export_streams_the_filtered_rows_with_a_header(signed_in, user, project, hold_clock):
    api_key_create(project=project, name="Production", created_by=user, ip="198.51.100.7")
    project_rename(project=project, name="Renamed", by=user)

    now = hold_clock(audit_log)  # the day cannot turn between the answer and the check
    response = signed_in.get(project_audit_csv(project), {"action": "api_keys"})

    assert response.status_code == 200
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="reminix-audit-{project.slug}-{now:%Y-%m-%d}.csv"'
    )
    rows = read_csv(response)
    header, body = rows[0], rows[1:]
    assert header[:5] == ["time_utc", "project", "actor", "action", "action_label"]
    assert len(body) == 1
    row = dict(zip(header, body[0], strict=True))
    assert row["action"] == "api_key.created"
    assert row["actor"] == user.email
    assert row["project"] == project.slug
    assert row["ip_address"] == "198.51.100.7"
    assert row["target_label"].startswith("Production (reminix_sk_")
    assert '"permissions"' in row["details"]


def test_the_export_ignores_the_pager_and_exports_every_matching_event(signed_in, user, project):
    for n in range(75):
        record(project, user, "project.renamed", target_label=f"rename-{n}")
    newest = AuditEvent.objects.for_project(project).first()

    rows = read_csv(signed_in.get(project_audit_csv(project), {"before": newest.pk}))

    assert len(rows) == 1 + 75 + 1  # header, the renames, and the project's creation


def test_the_export_neutralises_spreadsheet_formulas(signed_in, user, project):
    api_key_create(project=project, name='=HYPERLINK("http://evil.example","x")', created_by=user)
    record(project, user, "project.renamed", target_label="+1+cmd|' /C calc'!A0")
    record(project, user, "project.renamed", target_label="-2")
    record(project, user, "project.renamed", target_label="@SUM(1)")

    rows = read_csv(signed_in.get(project_audit_csv(project)))
    cells = [cell for row in rows[1:] for cell in row]

    assert not any(cell.startswith(("=", "+", "-", "@")) for cell in cells)
    assert '\'=HYPERLINK("http://evil.example","x") (reminix_sk_' in " ".join(cells)
    assert "'-2" in cells
    assert "'@SUM(1)" in cells


def test_csv_safe_quotes_only_what_a_spreadsheet_would_evaluate():
    assert csv_safe("=1+1") == "'=1+1"
    assert csv_safe("\tcmd") == "'\tcmd"
    assert csv_safe("ada@example.com") == "ada@example.com"
    assert csv_safe("") == ""
    # After spaces or line breaks, which an import may trim, and in full-width forms.
    for hidden in (" =1+1", "\n@SUM(1)", "\u3000+1", "\uff1dcmd", "\uff20SUM(1)", "  \uff0d2"):
        assert csv_safe(hidden) == "'" + hidden, repr(hidden)
    for plain in ("a = b", "Ada Lovelace", " ada", "\uff21"):
        assert csv_safe(plain) == plain, repr(plain)


def test_the_users_export_has_their_sign_ins(client, user):
    sign_in(client, user.email, "wrong", address="203.0.113.20")
    sign_in(client, user.email, PASSWORD, address="203.0.113.21")

    response = client.get(USER_AUDIT_CSV, {"action": "account"})

    assert 'filename="reminix-audit-account-' in response["Content-Disposition"]
    rows = read_csv(response)
    actions = [row[3] for row in rows[1:]]
    assert actions == ["user.signed_in", "user.sign_in_failed", "user.signed_up"]
    assert rows[2][8] == "203.0.113.20"


def test_an_export_with_bad_filters_shows_the_page_with_the_errors(signed_in, project):
    response = signed_in.get(project_audit_csv(project), {"ip": "nope"})
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
    assert 'id="id_ip_error"' in response.content.decode()


# -- Append-only ----------------------------------------------------------------------------


def test_an_event_cannot_be_changed_once_written(user):
    event = AuditEvent.objects.get(actor=user, action="user.signed_up")
    event.action = "nothing.happened"
    with pytest.raises(AuditLogIsAppendOnly):
        event.save()
    event.refresh_from_db()
    assert event.action == "user.signed_up"


def test_an_event_cannot_be_deleted(user):
    event = AuditEvent.objects.get(actor=user, action="user.signed_up")
    with pytest.raises(AuditLogIsAppendOnly):
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_queryset_refuses_updates_and_deletes(user):
    events = AuditEvent.objects.filter(actor=user)
    count = events.count()
    with pytest.raises(AuditLogIsAppendOnly):
        events.update(action="nothing.happened")
    with pytest.raises(AuditLogIsAppendOnly):
        events.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.bulk_update(list(events), ["action"])
    with pytest.raises(AuditLogIsAppendOnly):
        AuditEvent.objects.update_or_create(pk=events.first().pk, defaults={"action": "x"})
    assert AuditEvent.objects.filter(actor=user, action="user.signed_up").count() == 1
    assert AuditEvent.objects.filter(actor=user).count() == count


def test_deleting_a_project_still_takes_its_events_with_it(user, project, other_project):
    api_key_create(project=project, name="Production", created_by=user)
    others = AuditEvent.objects.for_project(other_project).count()
    project_id = project.pk

    project.delete()

    assert not AuditEvent.objects.filter(project_id=project_id).exists()
    assert AuditEvent.objects.for_project(other_project).count() == others
    # The user's own account events stay.
    assert AuditEvent.objects.filter(actor=user, action="user.signed_up").exists()


def test_deleting_a_user_keeps_their_events_with_their_email(user, project, other_user):
    membership_add(project=project, user=other_user, role="member", by=user)
    Membership.objects.filter(user=user).delete()

    user.delete()

    event = AuditEvent.objects.get(action="membership.added")
    assert event.actor is None
    assert event.actor_email == "ada@example.com"


def test_purge_older_than_is_the_one_way_to_remove_events(user, project):
    old = record(project, user, "project.renamed", created_at=timezone.now() - timedelta(days=400))
    recent = AuditEvent.objects.count() - 1

    removed = AuditEvent.objects.purge_older_than(timezone.now() - timedelta(days=365))

    assert removed == 1
    assert not AuditEvent.objects.filter(pk=old.pk).exists()
    assert AuditEvent.objects.count() == recent


def test_htmx_keeps_the_address_bar_when_the_filters_have_errors(signed_in, project):
    response = signed_in.get(project_audit(project), {"ip": "nope"}, headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert 'id="id_ip_error"' in response.content.decode()
    assert response["HX-Push-Url"] == "false"


def test_a_token_kept_in_a_name_before_names_were_checked_is_not_shown_as_a_target(
    signed_in, user, project
):
    """An event's target is labelled with the name the key, token or project had then;
    the upgrade cut a pasted token from the names themselves (apikeys 0030, accounts 0019),
    but the trail is append-only and kept the label as it was. The pages and the export
    show it cut, as they cut the details; a hint stays."""
    pasted = "reminix_sk_" + "A1b2C3d4E5" * 3 + "Zz9Yy8"
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in pasted)
    for label in (f"CI {pasted} (reminix_sk_abcd…wxyz)", f"Prod {fullwidth}"):
        audit_record(
            action="api_key.created",
            actor=user,
            project=project,
            target_label=label,
            metadata={},
        )
    for page in ("accounts:project_audit", "accounts:project_audit_csv"):
        response = signed_in.get(reverse(page, args=[project.slug]))
        shown = b"".join(response.streaming_content) if response.streaming else response.content
        text = shown.decode()
        assert "CI reminix_sk_[redacted] (reminix_sk_abcd…wxyz)" in text, page
        assert "Prod reminix_sk_[redacted]" in text, page
        assert "A1b2C3d4E5" not in text and "Ａ１ｂ２" not in text, page


def test_a_person_who_left_a_project_reads_their_events_there_under_its_slug_not_its_new_name(
    client, user, project, other_user
):
    """Their own events stay theirs to read, but the project's name is its owners' to change
    since: a former member reads the address it had (its slug, which never changes)."""
    membership_add(project=project, user=other_user, role="member", by=user)
    api_key_create(project=project, name="Mine", created_by=other_user)
    membership_remove(membership=Membership.objects.get(project=project, user=other_user), by=user)
    project_rename(project=project, name="Codename Falcon", by=user)
    client.force_login(other_user)
    page = page_text(client.get(USER_AUDIT))
    assert "Codename Falcon" not in page
    assert f"{project.slug} (you left it)" in page


def test_the_audit_log_names_the_key_that_revoked_or_deployed_as_the_actor(api, api_key, project):
    """A revoke or a deploy over /v1 by an API key names the key (\"via\"), and the audit
    page's Actor column said "API" or nothing: the key is who did it, as the Actor column
    says of the key that minted a client token."""
    minted = api.post("/v1/client-tokens", {"context": {}}).json()
    api.send("DELETE", f"/v1/client-tokens/{minted['id']}")
    api.send("PUT", "/v1/agents/support", {})
    for action in ("client_token.revoked", "agent.created"):
        entry = AuditEntry.of(AuditEvent.objects.get(action=action))
        assert entry.actor == f"API key {api_key[0]}", action
        assert "via" not in dict(entry.details), action  # said once, as the actor
