"""key_on_client_api: an API key sent to the Client API is in a browser's code, where
every visitor to the page can read it. The API refuses it; the call is logged on the key
(api/authentication.py) and raises a high alert, emailed, that leads to the calls."""

from __future__ import annotations

from datetime import timedelta

from django.core import mail
from django.test import Client
from django.utils import timezone

from alerts.detection import AUTH_BURST_THRESHOLD, detect
from alerts.models import Flag
from alerts.views import evidence_url
from apikeys.services import client_token_create, personal_token_create
from tests.api.assertions import assert_error
from tests.conftest import Api


def from_a_browser(secret: str, times: int = 1) -> None:
    browser = Api(Client(), secret)
    for _ in range(times):
        assert_error(browser.get("/client/token"), 403, "insufficient_permissions")


def test_a_key_sent_to_the_client_api_raises_a_high_alert_leading_to_its_calls(
    api_key, user, signed_in
):
    key, secret = api_key
    from_a_browser(secret, times=3)
    detect(now=timezone.now() + timedelta(minutes=1))

    [flag] = Flag.objects.all()
    assert (flag.kind, flag.severity, flag.api_key, flag.occurrences) == (
        Flag.Kind.KEY_ON_CLIENT_API,
        Flag.Severity.HIGH,
        key,
        3,
    )
    assert "sent to the Client API" in flag.summary and "Roll it" in flag.summary
    assert flag.evidence["ips"] == ["127.0.0.1"]
    [email] = mail.outbox
    assert email.to == [user.email]
    assert key.name in email.body

    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert [(r.path, r.status) for r in rows] == [("/client/token", 403)] * 3


def test_they_are_not_counted_as_a_burst_of_refusals_as_well(api_key):
    """One leak, one alert: a page loaded often sends its key as often, and a second alert
    about "a burst of auth failures" would send its owners looking for someone probing."""
    from_a_browser(api_key[1], times=AUTH_BURST_THRESHOLD + 5)
    detect(now=timezone.now() + timedelta(minutes=1))

    assert [f.kind for f in Flag.objects.all()] == [Flag.Kind.KEY_ON_CLIENT_API]


def test_client_tokens_and_pats_on_the_client_api_raise_none(api_key, project, user):
    """A client token belongs there (even refused); a PAT's calls are its person's, shown on
    its usage page, and raise no project alert, as its other refusals do not."""
    key, _ = api_key
    _, token = client_token_create(project=project, api_key=key, context={})
    browser = Api(Client(), str(token))
    browser.get("/client/agents/nobody/invoke")
    _, pat = personal_token_create(user=user, name="CLI")
    from_a_browser(pat, times=3)
    detect(now=timezone.now() + timedelta(minutes=1))

    assert not Flag.objects.exists()


def test_a_long_key_name_and_long_addresses_leave_the_summary_whole(api_key):
    """Flag.summary holds 300 characters. A key named with 100 of them, sent from three
    IPv6 addresses, was cut in the middle of the second address ("… (from 2001:db8:…,
    2001:db8:a"): an address the alert never saw, and no closing of the sentence. Fewer
    addresses are named where they do not fit, each whole; the advice always is."""
    key, secret = api_key
    key.name = "N" * 100
    key.save(update_fields=["name"])
    addresses = [f"2001:db8:aaaa:bbbb:cccc:dddd:eeee:f00{n}" for n in range(1, 4)]
    browser = Api(Client(), secret)
    for address in addresses:
        browser.client.defaults["REMOTE_ADDR"] = address
        assert_error(browser.get("/client/token"), 403, "insufficient_permissions")
    detect(now=timezone.now() + timedelta(minutes=1))

    [flag] = Flag.objects.all()
    assert len(flag.summary) <= 300
    assert "Roll it, and mint client tokens on your server instead" in flag.summary
    assert flag.summary.endswith(").")
    named = flag.summary.rsplit("(from ", 1)[1].removesuffix(").").split(", ")
    assert named and set(named) <= set(addresses)
    assert sorted(flag.evidence["ips"]) == addresses


def test_it_is_raised_whatever_the_project_switched_off(api_key, project):
    """It has no switch on the Alert rules page: with every switchable alert off (the
    burst of refusals its calls are no longer counted in among them), it is still raised."""
    from alerts.models import AlertRules
    from alerts.rules import SWITCHABLE

    AlertRules.objects.create(project=project, off=list(SWITCHABLE))
    from_a_browser(api_key[1], times=AUTH_BURST_THRESHOLD + 5)
    detect(now=timezone.now() + timedelta(minutes=1))

    assert [f.kind for f in Flag.objects.all()] == [Flag.Kind.KEY_ON_CLIENT_API]


def test_a_revoked_or_expired_key_sent_there_is_not_to_be_rolled(api_key, user):
    """A revoked key's secret in a page is still sent (logged on the key, high: the page's
    code holds a secret of the project's). Its alert told the owners to "Roll it", which
    a revoked or expired key cannot be (the Alerts page offers no roll for it). It says the
    key no longer works, and what is left to do."""
    from apikeys.services import api_key_revoke

    key, secret = api_key
    api_key_revoke(api_key=key, by=user)
    from_a_browser(secret, times=2)
    detect(now=timezone.now() + timedelta(minutes=1))

    [flag] = Flag.objects.all()
    assert (flag.kind, flag.severity, flag.occurrences) == (
        Flag.Kind.KEY_ON_CLIENT_API,
        Flag.Severity.HIGH,
        2,
    )
    assert "Roll it" not in flag.summary
    assert "no longer works" in flag.summary
    assert "mint client tokens on your server" in flag.summary


def test_its_link_shows_each_of_the_keys_calls_to_the_client_api_whatever_their_answer(
    signed_in, project, make_key
):
    """Only a call to an endpoint of the Client API, with a method it takes, is refused
    with 403 before anything else: a key sent to a wrong path (a 404), with GET to invoke
    (a 405), or to /client itself is in a page's code all the same. /client itself raised
    no alert, and the others' "See the calls" (the key's 403s) opened an empty log; the
    key's own 403s on /v1 in the same minutes were listed instead, as if they were
    these. The link lists the key's calls to the Client API, all of them and no other."""
    from tests.alerts.test_detection import NOW, call, run
    from usage.writer import usage_write

    key, _ = make_key(project, name="Page")
    at = NOW - timedelta(minutes=5)
    usage_write(
        [
            call(key, at, path="/client/token", method="GET", status=403,
                 error_code="insufficient_permissions"),
            call(key, at, path="/client/agents/x/invoke", method="GET", status=405,
                 error_code="invalid_request"),
            call(key, at, path="/client/agent", method="GET", status=404, error_code="not_found"),
            call(key, at, path="/client", method="GET", status=404, error_code="not_found"),
            call(key, at, path="/v1/api-keys", method="GET", status=403,
                 error_code="insufficient_permissions"),
        ]
    )  # fmt: skip
    [flag] = run()

    assert (flag.kind, flag.occurrences) == (Flag.Kind.KEY_ON_CLIENT_API, 4)
    rows = signed_in.get(evidence_url(flag)).context["page"].rows
    assert sorted(r.path for r in rows) == [
        "/client",
        "/client/agent",
        "/client/agents/x/invoke",
        "/client/token",
    ]


def test_the_link_of_an_alert_open_for_days_shows_its_latest_day(signed_in, project, make_key):
    """The call log searches a path over at most a day of calls: an alert open for longer
    links to the calls of its last day (and says so), not to a log that refuses the
    search."""
    from alerts.links import evidence_note
    from tests.alerts.test_detection import NOW, call, run
    from usage.writer import usage_write

    key, _ = make_key(project, name="Page")
    refused = {"path": "/client/token", "method": "GET", "status": 403,
               "error_code": "insufficient_permissions"}  # fmt: skip
    usage_write([call(key, NOW - timedelta(days=3), **refused)])
    usage_write([call(key, NOW - timedelta(minutes=5), **refused)])
    [flag] = run()

    page = signed_in.get(evidence_url(flag))
    assert page.status_code == 200
    assert not page.context["form"].errors
    assert [r.created_at for r in page.context["page"].rows] == [NOW - timedelta(minutes=5)]
    assert "last 24 hours" in evidence_note(flag)
