"""Names saved before direction controls were refused (core.validators), each holding a PDI
and an override, where a671bd2's render test did not reach: the messages an action leaves
("“…” is revoked."), built in Python; the audit log's targets and details, quoted from the
event; the typed confirmation's error beside its field; and the avatar's initial. Each
name stands in a closed isolate (a <bdi>, or FSI … PDI), so that its override reverses
nothing after it, and stays escaped; the audit export stays plain text."""

from __future__ import annotations

import csv
import datetime
import io
import re
import time

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Passkey, Project, User
from apikeys.models import ApiKey, PersonalAccessToken
from apikeys.services import personal_token_create
from audit.log import audit_record
from tests.usage.test_text_direction_isolated import ESCAPE, RLO, _unisolated, flag_saying

NAME = f"Prod{ESCAPE}dorp"


def _sudo(client) -> None:
    session = client.session
    session["sudo_at"] = time.time()
    session.save()


def _overrides_shown(html: str) -> list[str]:
    """Each override that stands outside a closed isolate, with the text before it."""
    shown = _unisolated(html)
    return [shown[max(0, m.start() - 80) : m.start() + 10] for m in re.finditer(RLO, shown)]


def test_messages_that_quote_a_name_show_it_isolated(signed_in, user, project, make_key):
    _sudo(signed_in)
    key, _ = make_key(project, name="Prod")
    pat, _ = personal_token_create(user=user, name="Laptop", projects=[project])
    passkey = Passkey.objects.create(
        user=user, credential_id="c1", public_key=b"k", user_handle=b"h", name="Phone"
    )
    ApiKey.objects.filter(pk=key.pk).update(name=NAME)
    PersonalAccessToken.objects.filter(pk=pat.pk).update(name=f"Laptop{ESCAPE}potpal")
    Passkey.objects.filter(pk=passkey.pk).update(name=f"Phone{ESCAPE}enohp")
    flag_saying("An alert", key=key, now=timezone.now())
    slug = project.slug
    actions = [
        ("apikeys:api_key_suspend", [slug, key.pk], {"reason": "Leaked"}),
        ("apikeys:api_key_suspend", [slug, key.pk], {"reason": "Leaked"}),  # already
        ("apikeys:api_key_resume", [slug, key.pk], {}),
        ("apikeys:api_key_resume", [slug, key.pk], {}),  # was not suspended
        ("apikeys:api_key_end_previous", [slug, key.pk], {}),
        ("apikeys:client_tokens_revoke_all", [slug, key.pk], {}),
        ("usage:api_key_networks", [slug, key.pk], {"networks": "203.0.113.0/24"}),
        ("usage:api_key_networks", [slug, key.pk], {"networks": ""}),
        ("alerts:flag_acknowledge_key", [slug, key.pk], {}),
        ("apikeys:api_key_revoke", [slug, key.pk], {}),
        ("apikeys:api_key_revoke", [slug, key.pk], {}),  # already
        ("apikeys:api_key_resume", [slug, key.pk], {}),  # revoked: says how it ended
        ("apikeys:personal_token_networks", [pat.pk], {"networks": "203.0.113.0/24"}),
        ("apikeys:personal_token_networks", [pat.pk], {"networks": "203.0.113.0/24"}),
        ("apikeys:personal_token_networks", [pat.pk], {"networks": ""}),
        ("apikeys:personal_token_revoke", [pat.pk], {}),
        ("accounts:passkey_remove", [passkey.pk], {}),
    ]
    problems = []
    for name, args, data in actions:
        response = signed_in.post(reverse(name, args=args), data, follow=True)
        html = response.content.decode()
        messages = re.search(r'<div id="messages".*?</div>', html, re.DOTALL)
        assert messages and "message-" in messages.group(), (name, response.status_code)
        problems += [f"{name}: {shown!r}" for shown in _overrides_shown(messages.group())]
    assert problems == []


def test_a_message_quoting_a_name_keeps_its_markup_as_text(signed_in, project, make_key):
    key, _ = make_key(project, name="Prod")
    ApiKey.objects.filter(pk=key.pk).update(name=f"<script>x</script>{ESCAPE}")
    response = signed_in.post(
        reverse("apikeys:api_key_revoke", args=[project.slug, key.pk]), follow=True
    )
    html = response.content.decode()
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html


def test_the_project_deleted_message_shows_its_name_isolated(signed_in, user, project):
    _sudo(signed_in)
    Project.objects.filter(pk=project.pk).update(name=f"Acme{ESCAPE}emca")
    response = signed_in.post(
        reverse("accounts:project_delete", args=[project.slug]),
        {"confirm": f"Acme{ESCAPE}emca"},
        follow=True,
    )
    html = response.content.decode()
    assert "is deleted" in html
    assert _overrides_shown(html) == []


def test_the_typed_confirmations_error_shows_the_name_isolated(signed_in, project):
    _sudo(signed_in)
    Project.objects.filter(pk=project.pk).update(name=f"Acme{ESCAPE}emca")
    response = signed_in.post(
        reverse("accounts:project_delete", args=[project.slug]), {"confirm": "Acme"}
    )
    assert response.status_code == 422
    html = response.content.decode()
    assert "exactly" in html
    assert _overrides_shown(html) == []


def test_the_audit_log_shows_names_isolated_and_its_export_as_plain_text(
    signed_in, user, project, make_key
):
    key, _ = make_key(project, name="Prod")
    audit_record(
        action="api_key.renamed",
        actor=user,
        project=project,
        target=key,
        target_label=NAME,
        metadata={"from": f"Old{ESCAPE}dlo", "to": NAME, "reason": f"why{ESCAPE}yhw"},
    )
    audit_record(
        action="api_key.renamed",
        actor=user,
        project=project,
        target=key,
        target_label=f"=HYPERLINK(1){ESCAPE}",
        metadata={"from": "<b>x</b>", "to": "=1+1"},
    )
    # A client token minted with a key: the key, "name (hint)", is the actor.
    audit_record(
        action="client_token.created",
        actor=None,
        project=project,
        metadata={"minted_by": f"{NAME} (reminix_sk_AbCd…WxYz)"},
    )
    for page in (
        reverse("accounts:project_audit", args=[project.slug]),
        reverse("accounts:user_audit"),
    ):
        html = signed_in.get(page).content.decode()
        assert NAME[:4] in html
        assert "&lt;b&gt;x&lt;/b&gt;" in html
        assert _overrides_shown(html) == [], page

    export = signed_in.get(reverse("accounts:project_audit_csv", args=[project.slug]))
    text = b"".join(export.streaming_content).decode()
    assert "<bdi>" not in text
    assert "\u2068" not in text
    rows = list(csv.reader(io.StringIO(text)))
    header, renamed_to_formula, renamed = rows[0], rows[2], rows[3]
    assert rows[1][header.index("actor")] == f"API key {NAME} (reminix_sk_AbCd…WxYz)"
    label = header.index("target_label")
    details = header.index("details")
    assert renamed[label] == NAME  # as stored: no <bdi>, no FSI … PDI added
    assert '"to": "' + NAME + '"' in renamed[details]
    assert renamed_to_formula[label].startswith("'=")  # inert in a spreadsheet


@pytest.mark.parametrize(
    ("name", "initial"),
    [
        (f"{RLO}ada", "A"),
        (f"{ESCAPE}\u0301ada", "A"),
        ("e\u0301mile", "\u00c9"),
        ("\u202e\u2069", "A"),  # no letter at all: the address's
        ("", "A"),
        # One letter, whatever its upper case: "ß" upper-cases to "SS", "ﬁ" to "FI" and
        # "ŉ" to "ʼN", and the avatar showed two characters.
        ("\u00dfarah", "S"),
        ("\ufb01ona", "F"),
        ("\u0149ils", "N"),
        ("q\u0303uinn", "Q\u0303"),
    ],
)
def test_the_avatar_shows_a_visible_initial(signed_in, user, name, initial):
    User.objects.filter(pk=user.pk).update(name=name)
    html = signed_in.get(reverse("accounts:account_sessions")).content.decode()
    assert f'data-initial="{initial}"' in html


def test_a_tokens_label_in_the_audit_log_isolates_its_name_and_keeps_its_hint_after_it():
    from audit.reads import label_as_typed

    hint = "(reminix_sk_AbCd…WxYz)"
    assert label_as_typed(f"{NAME} {hint}") == f"\u2068Prod{RLO}dorp\u2069 {hint}"
    assert label_as_typed(f"Acme (x{RLO}y)") == f"\u2068Acme (x{RLO}y)\u2069"
    assert label_as_typed("Production (reminix_sk_AbCd…WxYz)") == "Production " + hint


def test_the_key_forms_policy_error_shows_the_projects_name_isolated(signed_in, project):
    Project.objects.filter(pk=project.pk).update(name=f"Acme{ESCAPE}emca", max_key_lifetime_days=30)
    day = timezone.now().date() + datetime.timedelta(days=60)
    key = signed_in.post(
        reverse("apikeys:api_key_create", args=[project.slug]),
        {"name": "Far", "access": "full", "expiry": "date", "expires_on": f"{day:%Y-%m-%d}"},
        headers={"HX-Request": "true"},
    )
    assert key.status_code == 422
    assert "accepts only tokens" in key.content.decode()
    assert _overrides_shown(key.content.decode()) == []
