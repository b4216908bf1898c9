"""Issue 14, point 6: the Alert rules page. Owners see each kind with its current value
and its default, save their own, and are told beside the field what is wrong with a value;
whatever is sent, nothing is stored unless all of it is valid, and the answer is never a
500. Every change is audited with its old and new values."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Membership, Project
from alerts.models import AlertRules
from alerts.rules import SWITCHABLE
from audit.models import AuditEvent
from tests.conftest import HTMX


def url(project: Project) -> str:
    return reverse("alerts:alert_rules", args=[project.slug])


def form_data(**values: str) -> dict[str, str]:
    """Every kind on, every number empty (the defaults), but for `values`."""
    return {**{f"{kind}_on": "on" for kind in SWITCHABLE}, **values}


def test_the_page_shows_each_kind_with_its_value_and_its_default(signed_in, project):
    AlertRules.objects.create(project=project, burst_failures=7)
    html = signed_in.get(url(project)).content.decode()
    for label in ("Burst of auth or permission failures", "Used from a new network",
                  "Volume spike", "Client token used from many addresses",
                  "Unused for a long time"):  # fmt: skip
        assert label in html
    assert 'name="burst_failures" value="7"' in html
    assert 'placeholder="10 (default)"' in html  # the burst window, not set
    assert "Empty: the default, 90." in html  # unused days


def test_an_owner_saves_rules_and_the_change_is_audited_old_to_new(signed_in, project, user):
    response = signed_in.post(
        url(project),
        form_data(burst_failures="5", unused_days=" 30 ", volume_spike_on=""),
    )
    assert response.status_code == 302
    rules = AlertRules.objects.get(project=project)
    assert (rules.burst_failures, rules.unused_days, rules.burst_minutes) == (5, 30, None)
    assert rules.off == ["volume_spike"]
    event = AuditEvent.objects.get(action="alerts.rules_changed")
    assert (event.actor, event.project) == (user, project)
    assert event.metadata["changes"] == {
        "burst_failures": [None, 5],
        "unused_days": [None, 30],
        "volume_spike": ["on", "off"],
    }

    # The same again changes nothing and writes nothing; emptying a value is the default.
    signed_in.post(url(project), form_data(burst_failures="5", unused_days="30"))
    signed_in.post(url(project), form_data(burst_failures="5", unused_days="30"))
    signed_in.post(url(project), form_data(unused_days="30"))
    changes = [
        e.metadata["changes"]
        for e in AuditEvent.objects.filter(action="alerts.rules_changed").order_by("id")
    ]
    assert changes[1:] == [{"volume_spike": ["off", "on"]}, {"burst_failures": [5, None]}]
    assert AlertRules.objects.get(project=project).burst_failures is None


def test_saving_the_defaults_on_a_project_without_rules_stores_nothing(signed_in, project):
    response = signed_in.post(url(project), form_data(), headers=HTMX)
    assert response.status_code == 200
    assert "as they were" in response.content.decode()
    assert (
        not AlertRules.objects.exists()
        and not AuditEvent.objects.filter(action="alerts.rules_changed").exists()
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("burst_failures", "²"),
        ("burst_failures", "٣"),
        ("burst_failures", "NaN"),
        ("burst_failures", "1e400"),
        ("burst_failures", "9" * 5000),
        ("burst_failures", "\x00"),
        ("burst_failures", "5\x00"),
        ("burst_failures", "-5"),
        ("burst_failures", "+5"),
        ("burst_failures", "5.0"),
        ("burst_failures", "1"),
        ("burst_failures", "10001"),
        ("burst_minutes", "0"),
        ("burst_minutes", "1441"),
        ("spike_factor", "1"),
        ("spike_factor", "Infinity"),
        ("client_token_max_ips", "1001"),
        ("unused_days", "6"),
        ("unused_days", "3651"),
        ("unused_days", "99999999999999999999999"),
    ],
)
def test_a_value_out_of_bounds_or_not_a_number_is_refused_beside_its_field(
    signed_in, project, field, value
):
    response = signed_in.post(url(project), form_data(**{field: value, "spike_min_calls": "50"}))
    assert response.status_code == 422
    html = response.content.decode()
    assert "Enter a whole number from" in html
    assert f'aria-describedby="id_{field}_error' in html or f"id_{field}_error" in html
    assert not AlertRules.objects.exists()  # the valid field beside it is not saved either


def test_errors_come_back_in_the_form_for_htmx(signed_in, project):
    response = signed_in.post(url(project), form_data(burst_failures="NaN"), headers=HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert html.lstrip().startswith('<form id="rules-form"')
    assert "Enter a whole number from 2 to 10,000" in html


def test_only_owners_see_and_change_the_rules(client, project, make_user, signed_in):
    member = make_user(email="member@example.com")
    Membership.objects.create(user=member, project=project, role=Membership.Role.MEMBER)
    assert (
        "Alert rules"
        in signed_in.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    )
    client.force_login(member)
    assert (
        "Alert rules"
        not in client.get(reverse("alerts:flag_list", args=[project.slug])).content.decode()
    )
    assert client.get(url(project)).status_code == 403
    assert client.post(url(project), form_data(burst_failures="2")).status_code == 403
    assert not AlertRules.objects.exists()


def test_another_projects_rules_page_does_not_exist_for_you(signed_in, make_user):
    other = Project.objects.for_user(make_user(email="other@example.com")).get()
    assert signed_in.get(url(other)).status_code == 404
    assert signed_in.post(url(other), form_data(burst_failures="2")).status_code == 404


def test_rules_saved_without_htmx_say_so_once(signed_in, project):
    """The page drew its messages at the top and again in the form (whose copy is for
    htmx, which swaps it in place of the top one): two boxes, two ids "messages"."""
    html = signed_in.post(url(project), form_data(), follow=True).content.decode()
    assert html.count("Alert rules saved") + html.count("as they were") == 1, html
    assert html.count('id="messages"') == 1


def test_the_page_says_a_key_sent_to_the_client_api_always_raises_an_alert(signed_in, project):
    """key_on_client_api has no switch: a key in a page's code is never ordinary. The page
    listed the alerts that are always raised without it, and said a burst of refusals
    left out only a suspension's and an allowlist's, while it now leaves out a key's calls
    to the Client API too (they have their own alert)."""
    html = signed_in.get(url(project)).content.decode()
    assert 'name="key_on_client_api_on"' not in html
    assert "a key sent to the Client API" in html
    assert "its calls to the Client API" in html
