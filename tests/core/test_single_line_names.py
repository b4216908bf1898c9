"""Names end up in lists, logs and mail subjects: every form that takes one refuses line
breaks and other control characters, beside the field, and keeps nothing (issue 10)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.models import Project, User
from apikeys.models import ApiKey, PersonalAccessToken
from core.mail import one_line
from tests.conftest import PASSWORD

BAD_NAMES = [
    "Eve proj\nBcc: x@example.com",
    "carriage\rreturn",
    "tab\there",
    "line\u2028separator",
    "escape\x1b[31m",
    "c1\x85next line",
]


def assert_refused_beside(response, field: str) -> None:
    assert response.status_code in (200, 422), response.status_code
    html = response.content.decode()
    assert f'id="id_{field}_error"' in html
    assert "no line breaks" in html


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_project_name_is_one_line(signed_in, project, name):
    response = signed_in.post(
        reverse("accounts:project_settings", args=[project.slug]), {"name": name}
    )
    assert_refused_beside(response, "name")
    project.refresh_from_db()
    assert "\n" not in project.name and project.name == Project.objects.get(pk=project.pk).name


def test_a_project_name_holding_a_token_is_refused_on_create_and_rename(
    signed_in, project, make_key
):
    """A project's name is shown to every member, in every mail subject and in the audit
    log, as a key's name is: a token pasted into it is refused as it is there."""
    _, secret = make_key(project)
    name = f"Prod {secret}"
    before = Project.objects.count()
    created = signed_in.post(reverse("accounts:project_create"), {"name": name})
    renamed = signed_in.post(
        reverse("accounts:project_settings", args=[project.slug]), {"name": name}
    )
    for response in (created, renamed):
        assert response.status_code in (200, 422)
        html = response.content.decode()
        assert 'id="id_name_error"' in html and "looks like a Reminix token" in html
        assert secret not in html
    assert Project.objects.count() == before
    assert not Project.objects.filter(name__contains=secret).exists()


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_new_projects_name_is_one_line(signed_in, name):
    before = Project.objects.count()
    response = signed_in.post(reverse("accounts:project_create"), {"name": name})
    assert_refused_beside(response, "name")
    assert Project.objects.count() == before


@pytest.mark.parametrize("name", BAD_NAMES)
def test_an_api_key_name_is_one_line_on_create_and_rename(signed_in, project, make_key, name):
    create = signed_in.post(
        reverse("apikeys:api_key_create", args=[project.slug]),
        {"name": name, "access": "full", "expiry": "never", "form_id": "f1"},
    )
    assert_refused_beside(create, "name")
    key, _ = make_key(project, name="Production")
    rename = signed_in.post(
        reverse("apikeys:api_key_rename", args=[project.slug, key.pk]), {"name": name}
    )
    assert rename.status_code in (200, 422)
    assert "no line breaks" in rename.content.decode()
    assert list(ApiKey.objects.values_list("name", flat=True)) == ["Production"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_a_personal_token_name_is_one_line(signed_in, name):
    response = signed_in.post(
        reverse("apikeys:personal_token_create"),
        {"name": name, "access": "full", "expiry": "30", "form_id": "f1"},
    )
    assert_refused_beside(response, "name")
    assert not PersonalAccessToken.objects.exists()


def test_a_persons_name_is_one_line_at_sign_up(client, db):
    response = client.post(
        reverse("accounts:signup"),
        {
            "name": "Mallory\nBcc: x@example.com",
            "email": "mallory@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert_refused_beside(response, "name")
    assert not User.objects.filter(email="mallory@example.com").exists()


def test_ordinary_names_with_punctuation_and_accents_still_pass(signed_in, project):
    name = "Zoë's “prod” — EU/1 (v2.0) 🚀"
    signed_in.post(reverse("accounts:project_settings", args=[project.slug]), {"name": name})
    project.refresh_from_db()
    assert project.name == name


REVERSING_NAMES = ["invoice\u202egpj.exe", "a\u202db", "x\u2067y\u2069", "\u202aLTR"]


@pytest.mark.parametrize("name", REVERSING_NAMES)
def test_a_name_that_would_reverse_the_text_around_it_is_refused_beside_the_field(
    signed_in, project, name
):
    response = signed_in.post(
        reverse("accounts:project_settings", args=[project.slug]), {"name": name}
    )
    assert response.status_code in (200, 422)
    html = response.content.decode()
    assert 'id="id_name_error"' in html and "reverse the text" in html
    project.refresh_from_db()
    assert project.name != name
    create = signed_in.post(
        reverse("apikeys:personal_token_create"),
        {"name": name, "access": "full", "expiry": "30", "form_id": "f1"},
    )
    assert "reverse the text" in create.content.decode()
    assert not PersonalAccessToken.objects.exists()


def test_right_to_left_names_and_their_marks_still_pass(signed_in, project):
    for name in ("פרויקט ראשי", "مشروع\u200f 2", "Zoë \u200eabc"):
        signed_in.post(reverse("accounts:project_settings", args=[project.slug]), {"name": name})
        project.refresh_from_db()
        assert project.name == name


def test_a_mail_header_drops_direction_overrides_saved_before_they_were_refused():
    assert one_line("Ada\u202e moc.elgoog \u2066x\u2069") == "Ada moc.elgoog x"
    assert one_line("مشروع\u200f") == "مشروع"  # a header does without the marks too
