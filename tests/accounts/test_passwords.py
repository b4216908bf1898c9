import pytest
from django.contrib.auth.hashers import make_password
from django.test import override_settings
from django.urls import reverse

from accounts.models import User
from reminix_dashboard.settings import base as real_settings
from tests.conftest import PASSWORD


@override_settings(PASSWORD_HASHERS=real_settings.PASSWORD_HASHERS)
def test_the_real_settings_store_passwords_as_argon2id(make_user):
    user = make_user(email="argon@example.com")
    algorithm, variant = user.password.split("$")[:2]
    assert (algorithm, variant) == ("argon2", "argon2id")


@override_settings(PASSWORD_HASHERS=real_settings.PASSWORD_HASHERS)
def test_an_old_pbkdf2_hash_is_upgraded_to_argon2id_at_sign_in(client, make_user):
    user = make_user(email="legacy@example.com")
    user.password = make_password(PASSWORD, hasher="pbkdf2_sha256")
    user.save(update_fields=["password"])
    response = client.post(
        reverse("accounts:login"), {"username": user.email, "password": PASSWORD}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.password.startswith("argon2$argon2id$")


def test_short_and_common_passwords_are_refused(client, db):
    response = client.post(
        reverse("accounts:signup"),
        {"email": "weak@example.com", "password1": "password", "password2": "password"},
    )
    html = response.content.decode()
    assert "too short" in html
    assert "too common" in html


def test_a_password_rule_is_reported_beside_the_password_not_its_confirmation(client, db):
    from django.urls import reverse

    response = client.post(
        reverse("accounts:signup"),
        {"email": "weak@example.com", "password1": "password", "password2": "password"},
    )
    form = response.context["form"]
    assert "too short" in " ".join(form.errors["password1"])
    assert "password2" not in form.errors


def test_the_new_password_rules_stand_beside_the_new_password(signed_in):
    from django.urls import reverse

    response = signed_in.post(
        reverse("accounts:password_change"),
        {
            "old_password": "correct horse battery staple",
            "new_password1": "abc",
            "new_password2": "abc",
        },
    )
    form = response.context["form"]
    assert "new_password1" in form.errors and "new_password2" not in form.errors


def test_the_current_password_cannot_be_guessed_without_limit_on_the_change_form(signed_in, user):
    """A borrowed session gets ten guesses at the current password in 15 minutes here, as at
    the sudo prompt: otherwise this form is a guessing oracle past the sign-in lockout."""
    from django.urls import reverse

    url = reverse("accounts:password_change")
    new = "a brand new passphrase 77"
    for n in range(10):
        wrong = {"old_password": f"guess {n}", "new_password1": new, "new_password2": new}
        assert signed_in.post(url, wrong).status_code == 200
    right = {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    response = signed_in.post(url, right)
    assert response.status_code == 200
    assert "Too many tries" in str(response.context["form"].errors["old_password"])
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_user_made_from_a_hash_takes_only_a_hash_a_hasher_made(db):
    """A sign-up hashes on the request and makes the account after the answer from the
    hash: a password passed as the hash would be stored in clear, and one passed beside
    it dropped."""
    with pytest.raises(ValueError, match="no password hash"):
        User.objects.create_user("clear@example.com", password_hash=PASSWORD)
    with pytest.raises(ValueError, match="not both"):
        User.objects.create_user(
            "both@example.com", "another password", password_hash=make_password(PASSWORD)
        )
    assert not User.objects.exists()
    made = User.objects.create_user("hashed@example.com", password_hash=make_password(PASSWORD))
    assert made.check_password(PASSWORD)
